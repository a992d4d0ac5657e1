// rope_scaling / rope_parameters of types yarn, dynamic and longrope read from a Config block as
// transformers reads them, and every refusal naming the key and what to do.
#include <gtest/gtest.h>

#include <string>

#include "driver/case_file.h"
#include "driver/case_spec.h"
#include "driver/render.h"
#include "tests/driver/spec_support.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

using test::problems_of;

using test::contains;

std::string llama_case(const std::string& rope, const std::string& extra = "") {
  return "# T\n\n## C\n\n### Config\n\n```json\n{\n"
         "  \"model_type\": \"llama\",\n"
         "  \"vocab_size\": 48,\n"
         "  \"hidden_size\": 32,\n"
         "  \"intermediate_size\": 64,\n"
         "  \"num_hidden_layers\": 2,\n"
         "  \"num_attention_heads\": 4,\n"
         "  \"max_position_embeddings\": 32,\n" +
         extra + "  \"rope_scaling\": " + rope +
         "\n}\n```\n\n### Inputs\n\n```json\n{\"prompts\": [[2, 31, 17]], \"decode\": 1}\n```\n";
}

CaseSpec read(const std::string& markdown) { return test::spec_of(markdown); }

TEST(RopeConfig, YarnReadsEveryKeyTransformersReads) {
  const CaseSpec spec = read(llama_case(
      "{\"rope_type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 8, "
      "\"beta_fast\": 16, \"beta_slow\": 2, \"mscale\": 0.707, \"mscale_all_dim\": 1.0, "
      "\"attention_factor\": 1.5, \"truncate\": false}"));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  const ModelConfig& c = spec.model;
  EXPECT_EQ(c.rope_type, "yarn");
  EXPECT_EQ(c.rope_factor, 4.0);
  EXPECT_EQ(c.rope_original_max_position_embeddings, 8);
  EXPECT_EQ(c.rope_beta_fast, 16.0);
  EXPECT_EQ(c.rope_beta_slow, 2.0);
  EXPECT_EQ(c.rope_mscale, 0.707);
  EXPECT_EQ(c.rope_mscale_all_dim, 1.0);
  EXPECT_EQ(c.rope_attention_factor, 1.5);
  EXPECT_FALSE(c.rope_truncate);
  EXPECT_TRUE(c.rope_has_factor);
}

TEST(RopeConfig, YarnNullsMeanTheDefaultsAndANullFactorIsDerived) {
  const CaseSpec spec = read(llama_case(
      "{\"type\": \"yarn\", \"factor\": null, \"original_max_position_embeddings\": 8, "
      "\"beta_fast\": null, \"attention_factor\": null, \"finetuned\": true}"));
  ASSERT_TRUE(spec.problems.empty()) << problems_of(spec);
  EXPECT_FALSE(spec.model.rope_has_factor);
  EXPECT_EQ(spec.model.rope_beta_fast, 32.0);
  EXPECT_EQ(spec.model.rope_attention_factor, 0.0);
}

TEST(RopeConfig, DynamicAndLongrope) {
  const CaseSpec dynamic = read(llama_case("{\"rope_type\": \"dynamic\", \"factor\": 2.0}"));
  ASSERT_TRUE(dynamic.problems.empty()) << problems_of(dynamic);
  EXPECT_EQ(dynamic.model.rope_type, "dynamic");
  EXPECT_EQ(dynamic.model.rope_factor, 2.0);

  const CaseSpec longrope = read(llama_case(
      "{\"rope_type\": \"longrope\", \"short_factor\": [1, 1.5, 2, 4], "
      "\"long_factor\": [1, 3, 7, 16], \"original_max_position_embeddings\": 8}"));
  ASSERT_TRUE(longrope.problems.empty()) << problems_of(longrope);
  EXPECT_EQ(longrope.model.rope_short_factor, (std::vector<double>{1, 1.5, 2, 4}));
  EXPECT_EQ(longrope.model.rope_long_factor, (std::vector<double>{1, 3, 7, 16}));
  EXPECT_FALSE(longrope.model.rope_has_factor);
}

TEST(RopeConfig, EachBadValueIsNamedWithWhatToDo) {
  const std::string yarn =
      "{\"rope_type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 8";
  const std::string longrope =
      "{\"rope_type\": \"longrope\", \"original_max_position_embeddings\": 8, ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {llama_case(yarn + ", \"truncate\": 1}"),
       "rope_scaling.truncate must be true or false, got 1"},
      {llama_case(yarn + ", \"beta_fast\": 0}"),
       "rope_scaling.beta_fast must be a positive number, got 0"},
      {llama_case(yarn + ", \"attention_factor\": -1}"),
       "rope_scaling.attention_factor must be a positive number, got -1"},
      {llama_case(yarn + ", \"mscale\": \"big\"}"),
       "rope_scaling.mscale must be a number, got \"big\""},
      {llama_case(yarn + ", \"mscale\": -1}"),
       "mscale and mscale_all_dim must be finite non-negative numbers, got -1 and 0"},
      {llama_case(yarn + ", \"beta_fsat\": 8}"),
       "rope_scaling key 'beta_fsat' is not read for rope type yarn (did you mean 'beta_fast'?)"},
      {llama_case("{\"rope_type\": \"yarn\", \"factor\": 4.0}"),
       "rope_scaling of type yarn needs 'original_max_position_embeddings'"},
      {llama_case("{\"rope_type\": \"yarn\", \"factor\": 4.0, "
                  "\"original_max_position_embeddings\": 0}"),
       "rope_scaling original_max_position_embeddings must be positive, got 0"},
      {llama_case("{\"rope_type\": \"dynamic\", \"factor\": 0}"),
       "rope_scaling factor must be a finite positive number, got 0"},
      {llama_case("{\"rope_type\": \"dynamic\"}"), "rope_scaling of type dynamic needs 'factor'"},
      {llama_case(longrope + "\"short_factor\": [1, 1, 1, 1]}"),
       "rope_scaling of type longrope needs 'long_factor'"},
      {llama_case(longrope + "\"short_factor\": [1, 1, 1], \"long_factor\": [1, 2, 3, 4]}"),
       "rope_scaling short_factor has 3 entries, the rotary dimension / 2 is 4"},
      {llama_case(longrope + "\"short_factor\": [1, 1, 1, 0], \"long_factor\": [1, 2, 3, 4]}"),
       "rope_scaling short_factor entries must be finite positive numbers, got 0"},
      {llama_case(longrope + "\"short_factor\": \"1\", \"long_factor\": [1, 2, 3, 4]}"),
       "rope_scaling.short_factor must be an array of numbers, got \"1\""},
      {llama_case(longrope + "\"short_factor\": [1, 1, 1, 1], \"long_factor\": [1, 2, 3, null]}"),
       "rope_scaling.long_factor must be an array of numbers"},
      {llama_case("{\"rope_type\": \"proportional\", \"factor\": 2}"),
       "is not supported (pinmark implements rope types default, linear, llama3, dynamic, yarn "
       "and longrope); set rope_scaling to one of these or null"},
      {llama_case("null", "  \"partial_rotary_factor\": 0.5,\n"),
       "partial_rotary_factor 0.5 is not supported: this family's attention rotates the whole "
       "head (transformers fails on a partial rotary table for it); set it to 1.0 or remove it"},
      {llama_case("{\"rope_type\": \"default\", \"partial_rotary_factor\": 0.25}"),
       "rope_scaling.partial_rotary_factor 0.25 is not supported"},
  };
  for (const auto& [markdown, message] : cases) {
    const CaseSpec spec = read(markdown);
    EXPECT_TRUE(contains(problems_of(spec), message))
        << "expected: " << message << "\ngot: " << problems_of(spec);
  }
  // A longrope without factor needs max_position_embeddings for it.
  std::string no_max =
      llama_case(longrope + "\"short_factor\": [1, 1, 1, 1], \"long_factor\": [1, 2, 3, 4]}");
  no_max.replace(no_max.find("  \"max_position_embeddings\": 32,\n"), 33, "");
  EXPECT_TRUE(contains(problems_of(read(no_max)),
                       "rope_scaling without factor needs max_position_embeddings"))
      << problems_of(read(no_max));
  // partial_rotary_factor 1 is the full head: accepted.
  EXPECT_TRUE(read(llama_case("null", "  \"partial_rotary_factor\": 1.0,\n")).problems.empty());
}

TEST(RopeConfig, DynamicNeedsMaxPositionEmbeddings) {
  std::string markdown = llama_case("{\"rope_type\": \"dynamic\", \"factor\": 2.0}");
  markdown.replace(markdown.find("  \"max_position_embeddings\": 32,\n"), 33, "");
  EXPECT_TRUE(contains(problems_of(read(markdown)),
                       "rope type dynamic needs max_position_embeddings"))
      << problems_of(read(markdown));
}

}  // namespace
}  // namespace pinmark
