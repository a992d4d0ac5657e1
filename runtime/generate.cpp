#include "runtime/generate.h"

#include <algorithm>
#include <climits>
#include <stdexcept>

namespace pinmark {

namespace {

template <class T>
std::vector<double> logits_row(const Tensor<T>& logits, int r) {
  const int64_t vocab = logits.shape[1];
  auto first = logits.data.begin() + int64_t{r} * vocab;
  return std::vector<double>(first, first + vocab);
}

// All input problems are reported before any forward pass runs, with the sequence they are in.
void check_inputs(const ModelConfig& config, const std::vector<std::vector<int>>& prompts,
                  const GenerateOptions& options) {
  if (options.decode < 0)
    throw std::runtime_error("decode must not be negative, got " + std::to_string(options.decode));
  if (options.prefill_chunk < 0)
    throw std::runtime_error("prefill_chunk must not be negative, got " +
                             std::to_string(options.prefill_chunk));
  for (size_t s = 0; s < prompts.size(); ++s) {
    const std::string where = "sequence " + std::to_string(s) + ": ";
    if (prompts[s].empty()) throw std::runtime_error(where + "empty prompt");
    // Positions are ints; counted in 64 bits so that the check itself cannot overflow.
    const int64_t positions = static_cast<int64_t>(prompts[s].size()) + options.decode;
    if (positions > INT_MAX)
      throw std::runtime_error(where + std::to_string(prompts[s].size()) + " prompt tokens + decode " +
                               std::to_string(options.decode) + " = " + std::to_string(positions) +
                               " positions, more than " + std::to_string(INT_MAX));
    for (int t : prompts[s])
      if (t < 0 || t >= config.vocab_size)
        throw std::runtime_error(where + "token id " + std::to_string(t) +
                                 " is outside the vocabulary (vocab_size " +
                                 std::to_string(config.vocab_size) + ")");
  }
}

}  // namespace

int argmax(const std::vector<double>& values) {
  if (values.empty()) throw std::runtime_error("argmax of an empty row");
  // Strictly greater, so the first of equal maxima wins.
  int best = 0;
  for (size_t i = 1; i < values.size(); ++i)
    if (values[i] > values[best]) best = static_cast<int>(i);
  return best;
}

template <class T>
std::vector<SequenceOutput> generate(Model<T>& model, const std::vector<std::vector<int>>& prompts,
                                     const GenerateOptions& options, const BatchTapFn<T>& tap) {
  check_inputs(model.config(), prompts, options);
  std::vector<SequenceOutput> outputs(prompts.size());

  for (size_t s = 0; s < prompts.size(); ++s) {
    const std::vector<int>& prompt = prompts[s];
    SequenceOutput& out = outputs[s];
    KVCache<T> cache(model.config(), static_cast<int>(prompt.size()) + options.decode);
    int call = 0;

    // Runs one forward call, keeps every row of its logits, returns the last row. `step`
    // names the call in an error (a decode step's token came from the model, not the inputs).
    auto feed = [&](const std::vector<int>& tokens, const std::string& step = "") {
      TapFn<T> call_tap;
      if (tap)
        call_tap = [&tap, s, call](const std::string& name, const Shape& shape, const T* data) {
          tap(static_cast<int>(s), call, name, shape, data);
        };
      Tensor<T> logits;
      try {
        RouteFn route;
        if (options.forced_routing)
          route = [&options, s, call](const std::string& layer, int n, int top_k, int* ids) {
            options.forced_routing(static_cast<int>(s), call, layer, n, top_k, ids);
          };
        logits = model.forward(tokens, cache, call_tap, route);
      } catch (const std::runtime_error& e) {
        throw std::runtime_error("sequence " + std::to_string(s) + ": " + step + e.what());
      }
      ++call;
      for (int r = 0; r < static_cast<int>(tokens.size()); ++r)
        out.logits.push_back(logits_row(logits, r));
      return out.logits.back();
    };

    const size_t chunk = options.prefill_chunk > 0 ? options.prefill_chunk : prompt.size();
    std::vector<double> last;
    for (size_t start = 0; start < prompt.size(); start += chunk) {
      const size_t end = std::min(prompt.size(), start + chunk);
      last = feed(std::vector<int>(prompt.begin() + start, prompt.begin() + end));
    }

    if (options.decode > 0) out.generated.push_back(argmax(last));
    const std::vector<int>* forced =
        s < options.forced_tokens.size() ? &options.forced_tokens[s] : nullptr;
    for (int i = 1; i < options.decode; ++i) {
      const int next = forced && static_cast<size_t>(i - 1) < forced->size() ? (*forced)[i - 1]
                                                                             : out.generated[i - 1];
      out.generated.push_back(
          argmax(feed({next}, "decode step " + std::to_string(i) + " (token " +
                                  std::to_string(next) + ", chosen at step " +
                                  std::to_string(i - 1) + "): ")));
    }
  }
  return outputs;
}

template std::vector<SequenceOutput> generate<double>(Model<double>&,
                                                      const std::vector<std::vector<int>>&,
                                                      const GenerateOptions&,
                                                      const BatchTapFn<double>&);
template std::vector<SequenceOutput> generate<float>(Model<float>&,
                                                     const std::vector<std::vector<int>>&,
                                                     const GenerateOptions&,
                                                     const BatchTapFn<float>&);

}  // namespace pinmark
