#include "runtime/rope.h"

#include <cmath>
#include <numbers>

namespace pinmark {

std::vector<double> rope_inv_freq(const ModelConfig& config) {
  const ModelConfig c = with_defaults(config);
  const int half = c.head_dim / 2;
  std::vector<double> inv_freq(half);
  for (int j = 0; j < half; ++j)
    inv_freq[j] = 1.0 / std::pow(c.rope_theta, static_cast<double>(2 * j) / c.head_dim);

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
  }
  return inv_freq;
}

}  // namespace pinmark
