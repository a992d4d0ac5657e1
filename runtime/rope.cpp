#include "runtime/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace pinmark {
namespace {

// base ** (2j / dim): the wavelength divisor of pair j, as torch.arange(0, dim, 2) / dim gives it.
double pos_freq(double base, int j, int dim) {
  return std::pow(base, static_cast<double>(2 * j) / dim);
}

// factor, or for yarn and longrope without one, max_position_embeddings over the original.
double effective_factor(const ModelConfig& c) {
  if (c.rope_has_factor) return c.rope_factor;
  return static_cast<double>(c.max_position_embeddings) / c.rope_original_max_position_embeddings;
}

// yarn's get_mscale(scale, mscale).
double yarn_mscale(double scale, double mscale) {
  if (scale <= 1) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

// yarn's find_correction_dim: the pair index whose wavelength completes num_rotations turns over
// the original context.
double yarn_correction_dim(double num_rotations, int dim, double base, double original) {
  return (dim * std::log(original / (num_rotations * 2 * std::numbers::pi))) / (2 * std::log(base));
}

}  // namespace

bool rope_depends_on_length(const ModelConfig& config) {
  return config.rope_type == "dynamic" || config.rope_type == "longrope";
}

RopeFrequencies rope_frequencies(const ModelConfig& config, long long seq_len) {
  const ModelConfig c = with_defaults(config);
  const int dim = rotary_dim(c);
  const int half = dim / 2;
  RopeFrequencies out;
  std::vector<double>& inv_freq = out.inv_freq;
  inv_freq.resize(half);
  for (int j = 0; j < half; ++j) inv_freq[j] = 1.0 / pos_freq(c.rope_theta, j, dim);

  if (c.rope_type == "linear") {
    for (double& f : inv_freq) f /= c.rope_factor;
  } else if (c.rope_type == "llama3") {
    // Wavelengths longer than the original context divided by low_freq_factor are slowed by
    // factor, shorter than it divided by high_freq_factor kept, and the band between blended.
    const double old_context = c.rope_original_max_position_embeddings;
    const double low_freq_wavelen = old_context / c.rope_low_freq_factor;
    const double high_freq_wavelen = old_context / c.rope_high_freq_factor;
    for (double& f : inv_freq) {
      const double wavelen = 2 * std::numbers::pi / f;
      const double scaled = wavelen > low_freq_wavelen ? f / c.rope_factor : f;
      const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      if (medium) {
        const double smooth = (old_context / wavelen - c.rope_low_freq_factor) /
                              (c.rope_high_freq_factor - c.rope_low_freq_factor);
        f = (1 - smooth) * scaled / c.rope_factor + smooth * scaled;
      } else {
        f = scaled;
      }
    }
  } else if (c.rope_type == "dynamic") {
    // NTK: past max_position_embeddings the base grows with the sequence length, so that the
    // slowest pair still turns less than once over the whole sequence.
    const double max_pos = c.max_position_embeddings;
    const double len = std::max(static_cast<double>(seq_len), max_pos);
    const double base =
        c.rope_theta * std::pow(c.rope_factor * len / max_pos - (c.rope_factor - 1),
                                static_cast<double>(dim) / (dim - 2));
    for (int j = 0; j < half; ++j) inv_freq[j] = 1.0 / pos_freq(base, j, dim);
  } else if (c.rope_type == "yarn") {
    // Pairs turning more than beta_fast times over the original context keep their frequency
    // (extrapolation), those turning fewer than beta_slow times are divided by factor
    // (interpolation), and a linear ramp over the pair index blends the band between.
    const double factor = effective_factor(c);
    out.attention_scaling = c.rope_attention_factor > 0 ? c.rope_attention_factor
                            : (c.rope_mscale > 0 && c.rope_mscale_all_dim > 0)
                                ? yarn_mscale(factor, c.rope_mscale) /
                                      yarn_mscale(factor, c.rope_mscale_all_dim)
                                : yarn_mscale(factor, 1.0);
    const double original = c.rope_original_max_position_embeddings;
    double low = yarn_correction_dim(c.rope_beta_fast, dim, c.rope_theta, original);
    double high = yarn_correction_dim(c.rope_beta_slow, dim, c.rope_theta, original);
    if (c.rope_truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim - 1));
    if (low == high) high += 0.001;  // transformers' guard against a zero-width ramp
    for (int j = 0; j < half; ++j) {
      const double p = pos_freq(c.rope_theta, j, dim);
      const double extrapolation = 1.0 / p;
      const double interpolation = 1.0 / (factor * p);
      const double ramp = std::clamp((j - low) / (high - low), 0.0, 1.0);
      const double extrapolation_factor = 1 - ramp;
      inv_freq[j] = interpolation * (1 - extrapolation_factor) +
                    extrapolation * extrapolation_factor;
    }
  } else if (c.rope_type == "longrope") {
    // Per-pair divisors: short_factor while the sequence fits the original context, long_factor
    // once it is longer, both with the same attention factor.
    const double factor = effective_factor(c);
    const double original = c.rope_original_max_position_embeddings;
    out.attention_scaling =
        c.rope_attention_factor > 0 ? c.rope_attention_factor
        : factor <= 1.0             ? 1.0
                                    : std::sqrt(1 + std::log(factor) / std::log(original));
    const std::vector<double>& ext =
        seq_len > c.rope_original_max_position_embeddings ? c.rope_long_factor
                                                          : c.rope_short_factor;
    for (int j = 0; j < half; ++j)
      inv_freq[j] = 1.0 / (ext[static_cast<size_t>(j)] * pos_freq(c.rope_theta, j, dim));
  }
  return out;
}

std::vector<double> rope_inv_freq(const ModelConfig& config) {
  return rope_frequencies(config, 0).inv_freq;
}

}  // namespace pinmark
