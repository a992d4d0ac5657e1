// Speed of the CUDA backend that the goldens pin (runtime/cuda, op by op), measured in one run:
// decode steps with the activations and the KV cache on the device (the model announces both,
// Backend::hold_activations and cache_written), beside the same backend told nothing about the
// activations (each op's operands cross to the device and its result back), and told nothing
// about either (attention also uploads every key and value it reads). All must give the same
// bits.
//
//   pinned_decode_bench [--prompt N] [--decode N] [--layers N] [--hidden N]
//                       [--precision fp32|bf16] [--held-only]
//
// The model is a Llama with pinmark's synthetic weights (GQA, 4 query heads per KV head, head
// size 64; by default hidden 512, 8 layers, a prompt of 1024 tokens, 32 decode steps); for the
// bf16 target the weights are rounded to bf16 first, as a case's are. Each target runs the
// prompt, then greedy decode steps; the figure is the median time of a decode step, from the
// host's clock, up to the logits on the host. The three ways alternate, twice each, and each
// keeps its better median. --held-only runs the first way alone, once (for a profiler, whose
// counters cover every kernel it launches). Exit status: 0, or 1 when no CUDA device can run here
// or the ways' logits differ, or 2 for a bad argument.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/model.h"
#include "runtime/storing_backend.h"
#include "runtime/target.h"
#include "runtime/weights.h"

namespace {

using pinmark::Backend;
using pinmark::ModelConfig;
using Clock = std::chrono::steady_clock;

// The backend as it is, but deaf to the activations' announcements (a StoringBackend hands
// none on): every op's operands and result cross between host and device.
class ActivationsOnHost : public pinmark::StoringBackend<float> {
 public:
  explicit ActivationsOnHost(std::unique_ptr<Backend<float>> inner)
      : StoringBackend<float>(std::move(inner)) {}

 protected:
  void store(float*, int64_t, int) override {}
};

// Deaf to the cache's as well: attention reads the host's arrays, as before the cache was
// mirrored.
class NothingHeld final : public ActivationsOnHost {
 public:
  using ActivationsOnHost::ActivationsOnHost;
  void cache_written(const float*, int64_t, int64_t, int64_t) override {}
  void release_cache(const float*) override {}
};

struct Run {
  std::vector<float> logits;  // every decode step's
  double median_ms = 0;
};

Run decode(const ModelConfig& c, const pinmark::Weights& w, Backend<float>& backend, int prompt,
           int steps) {
  pinmark::Model<float> model(c, w, backend);
  pinmark::KVCache<float> cache(c, prompt + steps);
  std::vector<int> tokens(prompt);
  for (int i = 0; i < prompt; ++i) tokens[i] = (7 * i + 3) % c.vocab_size;
  model.forward(tokens, cache);
  Run run;
  std::vector<double> ms;
  int next = 1;
  for (int s = 0; s < steps; ++s) {
    const Clock::time_point start = Clock::now();
    const pinmark::Tensor<float> logits = model.forward({next}, cache);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    run.logits.insert(run.logits.end(), logits.data.begin(), logits.data.end());
    next = static_cast<int>(std::max_element(logits.data.begin(), logits.data.end()) -
                            logits.data.begin());
  }
  std::sort(ms.begin(), ms.end());
  run.median_ms = ms[ms.size() / 2];
  return run;
}

constexpr char kUsage[] =
    "usage: pinned_decode_bench [--prompt N] [--decode N] [--layers N] [--hidden N]\n"
    "  --prompt N   tokens of the prompt (default 1024)\n"
    "  --decode N   decode steps timed (default 32)\n"
    "  --layers N   decoder layers (default 8)\n"
    "  --hidden N   hidden size, a multiple of 256 (default 512)\n"
    "  --precision P  fp32 or bf16 (default: both)\n"
    "  --held-only  only the backend as it is, once: for a profiler\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The value after flag argv[i], a whole positive number no larger than `most`.
int positive_arg(int argc, char** argv, int& i, int most) {
  const std::string flag = argv[i];
  if (i + 1 >= argc) throw UsageError(flag + " needs a value");
  const std::string text = argv[++i];
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 1 || value > most)
    throw UsageError(flag + " must be a whole number from 1 to " + std::to_string(most) +
                     ", got '" + text + "'");
  return value;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int prompt = 1024, steps = 32, layers = 8, hidden = 512;
    std::vector<std::string> precisions = {"fp32", "bf16"};
    bool held_only = false;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        std::fputs(kUsage, stdout);
        return 0;
      }
      if (a == "--prompt")
        prompt = positive_arg(argc, argv, i, 1 << 20);
      else if (a == "--decode")
        steps = positive_arg(argc, argv, i, 1 << 20);
      else if (a == "--layers")
        layers = positive_arg(argc, argv, i, 1024);
      else if (a == "--hidden")
        hidden = positive_arg(argc, argv, i, 1 << 16);
      else if (a == "--precision" && i + 1 < argc &&
               (std::string(argv[i + 1]) == "fp32" || std::string(argv[i + 1]) == "bf16"))
        precisions = {argv[++i]};
      else if (a == "--precision")
        throw UsageError("--precision must be fp32 or bf16");
      else if (a == "--held-only")
        held_only = true;
      else
        throw UsageError("unknown argument '" + a + "'");
    }
    if (hidden % 256 != 0)
      throw UsageError("--hidden must be a multiple of 256, got " + std::to_string(hidden));
    if (!pinmark::make_target_backend(pinmark::Target{"cuda", "fp32"})) {
      std::fprintf(stderr, "pinned_decode_bench: no CUDA device can run here\n");
      return 1;
    }
    ModelConfig c;
    c.model_type = "llama";
    c.vocab_size = 8192;
    c.hidden_size = hidden;
    c.intermediate_size = 3 * hidden;
    c.num_hidden_layers = layers;
    c.num_attention_heads = hidden / 64;
    c.num_key_value_heads = hidden / 256;
    c.max_position_embeddings = prompt + steps;
    c.seed = 11;
    c = pinmark::with_defaults(c);
    const pinmark::Weights w = pinmark::synthetic_weights(c);
    const pinmark::Weights bf16_weights = pinmark::rounded_weights(w, pinmark::DType::bf16);
    const double cache_mb =
        2.0 * layers * (prompt + steps) * c.num_key_value_heads * c.head_dim * sizeof(float) / 1e6;
    std::printf("%s\n", pinmark::target_provenance(pinmark::Target{"cuda", "fp32"}).c_str());
    std::printf(
        "llama: hidden %d, %d layers, %d heads / %d KV (head size %d), inter %d, vocab "
        "%d; prompt %d, then %d decode steps (context %d to %d)\n",
        hidden, layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
        c.intermediate_size, c.vocab_size, prompt, steps, prompt + 1, prompt + steps);
    std::printf("KV cache at the last step: %.1f MB (fp32 on the device)\n\n", cache_mb);
    std::printf(
        "| target | activations and cache on the device, ms/step | cache only | neither | "
        "speed-up over cache only | over neither | logits |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for (const std::string& precision : precisions) {
      const pinmark::Target target{"cuda", precision};
      const pinmark::Weights& weights = target.precision == "bf16" ? bf16_weights : w;
      auto held = pinmark::make_target_backend(target);
      ActivationsOnHost cache_only(pinmark::make_target_backend(target));
      NothingHeld neither(pinmark::make_target_backend(target));
      Backend<float>* ways[3] = {held.get(), &cache_only, &neither};
      if (held_only) {
        std::printf("| cuda %s | %.3f | | | | | |\n", precision.c_str(),
                    decode(c, weights, *held, prompt, steps).median_ms);
        continue;
      }
      // Alternated, so that no way gets a warmer or a quieter GPU alone.
      Run runs[2][3];
      for (int round = 0; round < 2; ++round)
        for (int way = 0; way < 3; ++way)
          runs[round][way] = decode(c, weights, *ways[way], prompt, steps);
      double best[3];
      bool same = true;
      for (int way = 0; way < 3; ++way) {
        best[way] = std::min(runs[0][way].median_ms, runs[1][way].median_ms);
        for (int round = 0; round < 2; ++round)
          same = same && same_bits(runs[0][0].logits, runs[round][way].logits);
      }
      std::printf("| cuda %s | %.3f | %.3f | %.3f | %.2fx | %.2fx | %s |\n", precision.c_str(),
                  best[0], best[1], best[2], best[1] / best[0], best[2] / best[0],
                  same ? "same bits" : "DIFFER");
      if (!same) return 1;
    }
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "pinned_decode_bench: %s\n%s", e.what(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pinned_decode_bench: %s\n", e.what());
    return 1;
  }
}
