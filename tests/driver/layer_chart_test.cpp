// The chart of error against layer: what is measured, how it is drawn, and where the --summary
// report puts it.
#include "driver/layer_chart.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>

#include "driver/case_file.h"
#include "driver/ci_report.h"
#include "driver/command_line.h"
#include "tests/driver/test_support.h"
#include "tests/support/temp_dir.h"

namespace pinmark {
namespace {

using test::contains;

size_t count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

const std::string kThreeLayersCase =
    "## Three layers\n\n### Config\n\n```json\n"
    "{\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 32,\n"
    " \"num_hidden_layers\": 3, \"num_attention_heads\": 4, \"pinmark\": {\"seed\": 11}}\n"
    "```\n\n### Inputs\n\n```json\n{\"prompts\": [[1, 2, 3]], \"decode\": 2, \"dumps\": []}\n```\n";

Case first_case(const std::string& text) {
  CaseFile file = parse_case_file(text);
  EXPECT_TRUE(file.problems.empty());
  return file.cases.at(0);
}

TEST(MeasureLayerErrors, OnePointPerLayerThenTheLogitsWhichAgreeWithTheRunner) {
  const CaseSpec spec = read_case_spec(first_case("# M\n\n" + kThreeLayersCase));
  const CaseResult result = run_case(spec);
  // The rows that ran here: cpu fp32 and cpu bf16 (the GPU rows need a GPU).
  std::vector<TargetRow> ran;
  for (const TargetRow& row : result.numerics)
    if (row.ran) ran.push_back(row);
  ASSERT_EQ(ran.size(), 2u);
  const LayerChart chart = measure_layer_errors(spec, result.numerics, "m.md::three_layers");
  EXPECT_EQ(chart.title, "m.md::three_layers");
  EXPECT_EQ(chart.points, (std::vector<std::string>{"0", "1", "2", "logits"}));
  ASSERT_EQ(chart.series.size(), 2u);
  for (size_t s = 0; s < 2; ++s) {
    const LayerSeries& series = chart.series[s];
    EXPECT_EQ(series.label, ran[s].label);
    EXPECT_EQ(series.tolerance, ran[s].tolerance);
    ASSERT_EQ(series.errors.size(), 4u);
    for (double e : series.errors) EXPECT_TRUE(e > 0 && std::isfinite(e)) << e;
    // The logits are measured as the runner measures them: the same number.
    EXPECT_EQ(series.errors.back(), ran[s].rel_l2);
  }
  // bf16 keeps 8 bits, fp32 24: its error is larger at every layer.
  for (size_t l = 0; l < 4; ++l) EXPECT_GT(chart.series[1].errors[l], 100 * chart.series[0].errors[l]);
}

TEST(MeasureLayerErrors, NothingForAKernelCaseOrTargetsThatDidNotRun) {
  const CaseSpec kernel = read_case_spec(first_case(
      "# K\n\n## S\n\n### Kernel\n\n```json\n{\"op\": \"softmax\", \"rows\": 2, \"len\": 4, \"seed\": 1}\n```\n"));
  EXPECT_TRUE(measure_layer_errors(kernel, run_case(kernel).numerics, "k").series.empty());
  const CaseSpec model = read_case_spec(first_case("# M\n\n" + kThreeLayersCase));
  std::vector<TargetRow> rows = run_case(model).numerics;
  for (TargetRow& row : rows) row.ran = false;  // carried rows: nothing to measure here
  EXPECT_TRUE(measure_layer_errors(model, rows, "m").series.empty());
}

LayerChart sample_chart() {
  LayerChart chart;
  chart.title = "a<b>.md::c&d";
  chart.points = {"0", "1", "logits"};
  chart.series.push_back({"cpu fp32", {1e-7, 0.0, 3e-7}, 1.5e-5, "PASS"});
  chart.series.push_back({"cpu bf16", {2e-3, 9e-3, INFINITY}, 8e-2, "FAIL"});
  return chart;
}

TEST(LayerChartSvg, AxisSpansEveryDecadeOfErrorsAndTolerances) {
  const std::string svg = layer_chart_svg(sample_chart());
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_TRUE(svg.ends_with("</svg>\n"));
  for (int d = -7; d <= -1; ++d) EXPECT_TRUE(contains(svg, ">1e" + std::to_string(d) + "</text>")) << d;
  EXPECT_FALSE(contains(svg, ">1e-8<"));
  EXPECT_FALSE(contains(svg, ">1e0<"));
  EXPECT_TRUE(contains(svg, ">logits</text>"));
}

TEST(LayerChartSvg, OneLineAndOneDashedToleranceEachWithVerdictsInTheLegend) {
  const std::string svg = layer_chart_svg(sample_chart());
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  EXPECT_EQ(count(svg, "<circle"), 6u);
  EXPECT_EQ(count(svg, "stroke-dasharray"), 4u);  // each tolerance, and its legend entry
  EXPECT_TRUE(contains(svg, ">cpu fp32 (PASS)</text>"));
  EXPECT_TRUE(contains(svg, ">cpu bf16 (FAIL)</text>"));
  // The title is escaped, the zero sits on the floor (1e-7, y 328.0) and infinity on top (44).
  EXPECT_TRUE(contains(svg, "Error against layer: a&lt;b&gt;.md::c&amp;d"));
  EXPECT_TRUE(contains(svg, "points=\"70.0,328.0 320.0,328.0 570.0,"));
  EXPECT_TRUE(contains(svg, " 570.0,44.0\"/>"));
}

TEST(LayerChartSvg, TheSameChartGivesTheSameBytes) {
  EXPECT_EQ(layer_chart_svg(sample_chart()), layer_chart_svg(sample_chart()));
}

TEST(LayerChartSummary, EmbeddedUnderItsFailedCase) {
  RunReport report;
  report.cases.push_back({"cases/m.md", "x", CaseReport::Status::kFailed,
                          {"cases/m.md:3: differs from its golden"}, "", "cases_m.md__x.svg"});
  const std::string md = markdown_summary(report);
  EXPECT_TRUE(contains(md, "- `cases/m.md::x`\n  - `cases/m.md:3: differs from its golden`\n\n"
                           "  ![error against layer, per target](cases_m.md__x.svg)\n"))
      << md;
}

TEST(LayerChartSummary, RunWritesTheChartBesideTheSummaryForAFailingModelCase) {
  test::TempDir dir;
  const std::string path = dir.file("m.md");
  test::write_file(path, "# M\n\n" + kThreeLayersCase);  // no output yet: the case fails
  std::ostringstream out, err;
  const std::string summary = dir.file("reports/summary.md");
  EXPECT_EQ(run_command_line({"run", "--no-pending", "--summary", summary, path}, out, err), 1)
      << out.str() << err.str();
  std::string chart_name;
  for (char ch : path + "::three_layers")
    chart_name += std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' ? ch : '_';
  chart_name += ".svg";
  const std::string chart = dir.file("reports/" + chart_name);
  ASSERT_TRUE(std::filesystem::exists(chart)) << chart;
  EXPECT_TRUE(contains(test::read_file(chart), ">cpu bf16 (PASS)</text>"));
  EXPECT_TRUE(contains(test::read_file(summary), "](" + chart_name + ")")) << test::read_file(summary);

  // Without --summary no chart is made.
  std::filesystem::remove(chart);
  std::ostringstream out2, err2;
  run_command_line({"run", "--no-pending", path}, out2, err2);
  EXPECT_FALSE(std::filesystem::exists(chart));
}

}  // namespace
}  // namespace pinmark
