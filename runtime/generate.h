// Prefill and greedy decode for a batch of prompts, each sequence through its own KV cache.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "runtime/model.h"

namespace pinmark {

struct GenerateOptions {
  int decode = 0;         // tokens to generate greedily after the prompt
  int prefill_chunk = 0;  // feed the prompt this many tokens per forward call; 0 = all at once
  // When set (one list per sequence), decode feeds these tokens instead of its own choices, so
  // a lower-precision target is compared with the oracle position by position even where its
  // argmax differs. `generated` still records the target's own choices.
  std::vector<std::vector<int>> forced_tokens;
  // When set, every MoE routing of sequence `sequence` in forward call `call` goes through it
  // (model.h, RouteFn), so a target can be fed the oracle's experts.
  std::function<void(int sequence, int call, const std::string& layer, int tokens, int top_k,
                     int* ids)>
      forced_routing;
};

struct SequenceOutput {
  // One row of fp64-converted logits per position fed: the prompt's positions, then one per
  // decode step after the first generated token.
  std::vector<std::vector<double>> logits;
  std::vector<int> generated;  // greedy continuation, lowest index wins a tie
};

// Called for every tap of every forward call: which sequence, which call (0 = first prefill
// call), then the tap itself.
template <class T>
using BatchTapFn = std::function<void(int sequence, int call, const std::string& name,
                                      const Shape& shape, const T* data)>;

template <class T>
std::vector<SequenceOutput> generate(Model<T>& model, const std::vector<std::vector<int>>& prompts,
                                     const GenerateOptions& options, const BatchTapFn<T>& tap = {});

// Index of the largest value; the lowest index among equal values.
int argmax(const std::vector<double>& values);

}  // namespace pinmark
