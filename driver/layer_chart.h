// A chart of error against layer for a model case: one line per target, its tolerance drawn,
// as SVG for the --summary report.
//
// The runner judges every tap of every target but keeps only the first past tolerance
// (TargetRow::first_divergence), so the per-layer errors are measured here again: the oracle
// and each target that ran are fed the same prompts, with the oracle's tokens forced, and each
// layer's error is the largest relative L2 error of its taps against the oracle's.
#pragma once

#include <string>
#include <vector>

#include "driver/case_runner.h"
#include "driver/case_spec.h"

namespace pinmark {

struct LayerSeries {
  std::string label;            // the target row's label: "cpu bf16"
  std::vector<double> errors;   // per layer, then the logits last
  double tolerance = 0;         // the row's tolerance (of the logits)
  std::string verdict = "PASS";  // the row's verdict: PASS, FAIL or ill-conditioned
};

struct LayerChart {
  std::string title;                // the case's name
  std::vector<std::string> points;  // x labels: "0", "1", ..., "logits"
  std::vector<LayerSeries> series;
};

// The errors per layer of each row of `rows` that ran here, measured as above. A chart with no
// series for a case that is not a model case or whose targets did not run here.
LayerChart measure_layer_errors(const CaseSpec& spec, const std::vector<TargetRow>& rows,
                                const std::string& title,
                                const BackendFactory& backends = make_target_backend);

// The chart as a standalone SVG document: a log-scale error axis over every decade the errors
// and tolerances span, one coloured line with points per series, its tolerance as a dashed
// line of the same colour, a legend naming each target and its verdict. An error of exactly
// zero is drawn on the axis floor. Deterministic: the same chart gives the same bytes.
std::string layer_chart_svg(const LayerChart& chart);

}  // namespace pinmark
