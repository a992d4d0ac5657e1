#include "runtime/generate.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <stdexcept>

#include "model_fixture.h"
#include "reference_model.h"
#include "runtime/cpu/cpu_backend.h"
#include "test_util.h"

namespace pinmark {
namespace {

using test::small_llama;

template <class T>
std::vector<SequenceOutput> run(const std::vector<std::vector<int>>& prompts, int decode,
                                int chunk = 0, const ModelConfig& config = small_llama()) {
  auto backend = make_cpu_backend<T>();
  Model<T> model(config, synthetic_weights(config), *backend);
  GenerateOptions options;
  options.decode = decode;
  options.prefill_chunk = chunk;
  return generate(model, prompts, options);
}

TEST(Argmax, LowestIndexWinsATie) {
  EXPECT_EQ(argmax({1.0, 3.0, 2.0}), 1);
  EXPECT_EQ(argmax({3.0, 1.0, 3.0}), 0);
  EXPECT_EQ(argmax({-2.0, -1.0, -1.0}), 1);
  EXPECT_EQ(argmax({5.0}), 0);
}

// Every logits row of a greedy run equals the reference forward pass over the whole sequence
// so far, and each generated token is the argmax of the row before it.
TEST(Generate, GreedyDecodeMatchesTheReferenceOverTheWholeSequence) {
  const ModelConfig c = small_llama();
  const std::vector<int> prompt = {3, 14, 15, 9, 2};
  const int decode = 4;
  const SequenceOutput out = run<double>({prompt}, decode, 2)[0];
  ASSERT_EQ(out.generated.size(), 4u);
  ASSERT_EQ(out.logits.size(), prompt.size() + decode - 1);

  std::vector<int> sequence = prompt;
  sequence.insert(sequence.end(), out.generated.begin(), out.generated.end() - 1);
  const std::vector<double> expected = ref::llama_logits(c, synthetic_weights(c), sequence);
  for (size_t r = 0; r < sequence.size(); ++r) {
    const std::vector<double> row(expected.begin() + r * 32, expected.begin() + (r + 1) * 32);
    test::expect_close(out.logits[r], row, 1e-12, "row " + std::to_string(r));
    if (r + 1 >= prompt.size()) {
      EXPECT_EQ(out.generated[r + 1 - prompt.size()], argmax(row)) << "row " << r;
    }
  }
}

TEST(Generate, PrefillChunkingDoesNotChangeTheResult) {
  const std::vector<std::vector<int>> prompts = {{1, 2, 3, 4, 5, 6, 7}};
  const SequenceOutput all = run<double>(prompts, 3, 0)[0];
  for (int chunk : {1, 2, 7, 100}) {
    const SequenceOutput chunked = run<double>(prompts, 3, chunk)[0];
    EXPECT_EQ(chunked.generated, all.generated) << chunk;
    ASSERT_EQ(chunked.logits.size(), all.logits.size());
    for (size_t r = 0; r < all.logits.size(); ++r)
      test::expect_close(chunked.logits[r], all.logits[r], 1e-12,
                         "chunk " + std::to_string(chunk) + " row " + std::to_string(r));
  }
}

TEST(Generate, NoDecodeGivesPromptLogitsOnly) {
  const SequenceOutput out = run<float>({{4, 4, 4}}, 0)[0];
  EXPECT_TRUE(out.generated.empty());
  EXPECT_EQ(out.logits.size(), 3u);
  EXPECT_EQ(run<float>({{4}}, 1)[0].logits.size(), 1u);
}

template <class T>
void expect_sequence_independent_of_batch() {
  const std::vector<int> alone = {7, 1, 30, 2};
  const SequenceOutput single = run<T>({alone}, 3)[0];
  const std::vector<SequenceOutput> batch = run<T>({{5, 5, 5, 5, 5, 5, 5, 5, 5}, alone, {0}}, 3);
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch[1].logits, single.logits);  // bitwise
  EXPECT_EQ(batch[1].generated, single.generated);
  EXPECT_NE(batch[0].logits, single.logits);
}

TEST(Generate, SequenceIsBitwiseIndependentOfItsBatch) {
  expect_sequence_independent_of_batch<double>();
  expect_sequence_independent_of_batch<float>();
}

template <class T>
void expect_same_bits_for_any_thread_count() {
  const int saved = omp_get_max_threads();
  const std::vector<std::vector<int>> prompts = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {3, 1}};
  omp_set_num_threads(1);
  const std::vector<SequenceOutput> one = run<T>(prompts, 4);
  omp_set_num_threads(2);
  const std::vector<SequenceOutput> two = run<T>(prompts, 4);
  omp_set_num_threads(3);
  const std::vector<SequenceOutput> three = run<T>(prompts, 4);
  omp_set_num_threads(saved);
  for (size_t s = 0; s < prompts.size(); ++s) {
    EXPECT_EQ(one[s].logits, two[s].logits);
    EXPECT_EQ(one[s].logits, three[s].logits);
    EXPECT_EQ(one[s].generated, two[s].generated);
  }
}

TEST(Generate, SameBitsForAnyThreadCount) {
  expect_same_bits_for_any_thread_count<double>();
  expect_same_bits_for_any_thread_count<float>();
}

TEST(Generate, TapNamesSequenceAndCall) {
  const ModelConfig c = small_llama();
  auto backend = make_cpu_backend<double>();
  Model<double> model(c, synthetic_weights(c), *backend);
  std::vector<std::tuple<int, int, Shape>> embeds;
  int logits_taps = 0;
  GenerateOptions options;
  options.decode = 3;
  options.prefill_chunk = 2;
  generate<double>(
      model, {{1, 2, 3, 4, 5}, {6, 7}}, options,
      [&](int s, int call, const std::string& name, const Shape& shape, const double*) {
        if (name == "embed") embeds.emplace_back(s, call, shape);
        logits_taps += name == "logits";
      });
  const std::vector<std::tuple<int, int, Shape>> expected = {
      {0, 0, {2, 24}}, {0, 1, {2, 24}}, {0, 2, {1, 24}},  // prefill in chunks of 2
      {0, 3, {1, 24}}, {0, 4, {1, 24}},                   // two decode steps
      {1, 0, {2, 24}}, {1, 1, {1, 24}}, {1, 2, {1, 24}}};
  EXPECT_EQ(embeds, expected);
  EXPECT_EQ(logits_taps, 8);
}

std::string generate_error(const std::vector<std::vector<int>>& prompts, int decode = 1,
                           int chunk = 0) {
  try {
    run<double>(prompts, decode, chunk);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Generate, InputErrorsNameTheSequence) {
  EXPECT_EQ(generate_error({{1, 2}, {}}), "sequence 1: empty prompt");
  EXPECT_EQ(generate_error({{1, 40}}),
            "sequence 0: token id 40 is outside the vocabulary (vocab_size 32)");
  EXPECT_EQ(generate_error({{1}, {2}, {3, -5}}),
            "sequence 2: token id -5 is outside the vocabulary (vocab_size 32)");
  EXPECT_EQ(generate_error({{1}}, -1), "decode must not be negative, got -1");
  EXPECT_EQ(generate_error({{1}}, 1, -2), "prefill_chunk must not be negative, got -2");
  EXPECT_TRUE(run<double>({}, 3).empty());
}

}  // namespace
}  // namespace pinmark
