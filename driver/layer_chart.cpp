#include "driver/layer_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <tuple>

#include "driver/ci_report.h"
#include "driver/numerics.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/generate.h"
#include "runtime/weights.h"

namespace pinmark {
namespace {

struct Tapped {
  std::map<std::tuple<int, int, std::string>, std::vector<double>> taps;
  std::vector<SequenceOutput> outputs;
};

// The oracle's choices (experts, selected keys), by sequence, forward call and choice tap, fed
// to each target as the runner feeds them, so that a target is compared on the same choices.
using Routing = std::map<std::tuple<int, int, std::string>, std::vector<int>>;

template <class T>
Tapped run_tapped(const CaseSpec& spec, const WeightSource& weights, Backend<T>& backend,
                  const std::vector<std::vector<int>>& forced, const Routing* routing) {
  Model<T> model(spec.model, weights, backend);
  GenerateOptions options;
  options.decode = spec.inputs.decode;
  options.prefill_chunk = spec.inputs.prefill_chunk;
  options.forced_tokens = forced;
  if (routing && !routing->empty())
    options.forced_routing = [routing](int sequence, int call, const std::string& layer,
                                       int tokens, int top_k, int* ids) {
      auto it = routing->find({sequence, call, layer});
      if (it != routing->end() && it->second.size() == static_cast<size_t>(tokens) * top_k)
        std::copy(it->second.begin(), it->second.end(), ids);
    };
  Tapped run;
  BatchTapFn<T> tap = [&](int sequence, int call, const std::string& name, const Shape& shape,
                          const T* data) {
    run.taps[{sequence, call, name}] = std::vector<double>(data, data + element_count(shape));
  };
  run.outputs = generate(model, spec.inputs.prompts, options, tap);
  return run;
}

}  // namespace

LayerChart measure_layer_errors(const CaseSpec& spec, const std::vector<TargetRow>& rows,
                                const std::string& title, const BackendFactory& backends) {
  LayerChart chart;
  chart.title = title;
  if (spec.kind != CaseSpec::Kind::model || !spec.problems.empty()) return chart;
  const int layers = spec.model.num_hidden_layers;
  for (int l = 0; l < layers; ++l) chart.points.push_back(std::to_string(l));
  chart.points.push_back("logits");

  const std::shared_ptr<const WeightSource> source = case_weights(spec);
  const WeightSource& weights = *source;
  auto oracle_backend = make_cpu_backend<double>();
  const Tapped oracle = run_tapped(spec, weights, *oracle_backend, {}, nullptr);
  std::vector<std::vector<int>> forced;
  for (const SequenceOutput& s : oracle.outputs) forced.push_back(s.generated);
  Routing routing;
  for (const auto& [key, values] : oracle.taps) {
    const std::string& name = std::get<2>(key);
    if (is_choice_tap(name))
      routing[{std::get<0>(key), std::get<1>(key), name}] =
          std::vector<int>(values.begin(), values.end());
  }

  for (const TargetRow& row : rows) {
    if (!row.ran) continue;
    std::unique_ptr<Backend<float>> backend = backends(row.target);
    if (!backend) continue;
    const Tapped run =
        run_tapped(spec, RoundedWeights(weights, storage_type(row.target)), *backend, forced,
                   &routing);
    LayerSeries series{row.label, std::vector<double>(layers + 1, 0.0), row.tolerance,
                       row.ill_conditioned ? "ill-conditioned" : row.ok ? "PASS" : "FAIL"};
    for (const auto& [key, values] : oracle.taps) {
      const int layer = tap_layer(std::get<2>(key));
      // Expert ids and selected keys are choices, not values: their error says nothing about
      // rounding.
      if (layer < 0 || layer >= layers || is_choice_tap(std::get<2>(key))) continue;
      auto it = run.taps.find(key);
      if (it == run.taps.end()) continue;
      const ErrorMetrics m = compare(values, it->second);
      series.errors[layer] = std::max(series.errors[layer], m.finite ? m.rel_l2 : INFINITY);
    }
    const ErrorMetrics logits = compare(flatten_logits(oracle.outputs), flatten_logits(run.outputs));
    series.errors[layers] = logits.finite ? logits.rel_l2 : INFINITY;
    chart.series.push_back(std::move(series));
  }
  return chart;
}

namespace {

std::string fixed(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", v);
  return buffer;
}

// Colours told apart by most readers, colour-blind ones included (Okabe and Ito).
constexpr const char* kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                    "#E69F00", "#56B4E9", "#000000", "#F0E442"};

}  // namespace

std::string layer_chart_svg(const LayerChart& chart) {
  constexpr double kWidth = 760, kHeight = 380, kLeft = 70, kRight = 190, kTop = 44, kBottom = 52;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  // The decades the finite, non-zero errors and the tolerances span.
  double low = INFINITY, high = 0;
  for (const LayerSeries& s : chart.series) {
    for (double e : s.errors)
      if (e > 0 && std::isfinite(e)) low = std::min(low, e), high = std::max(high, e);
    if (s.tolerance > 0) low = std::min(low, s.tolerance), high = std::max(high, s.tolerance);
  }
  if (!(low <= high)) low = 1e-8, high = 1;
  const int bottom_decade = static_cast<int>(std::floor(std::log10(low)));
  int top_decade = static_cast<int>(std::ceil(std::log10(high)));
  if (top_decade == bottom_decade) ++top_decade;
  const double floor_value = std::pow(10.0, bottom_decade);
  auto y_of = [&](double e) {
    if (!std::isfinite(e)) return kTop;  // NaN or infinity: at the top
    const double v = std::log10(std::max(e, floor_value));
    return kTop + plot_h * (top_decade - v) / (top_decade - bottom_decade);
  };
  const size_t n = std::max<size_t>(chart.points.size(), 1);
  auto x_of = [&](size_t i) {
    return n == 1 ? kLeft + plot_w / 2 : kLeft + plot_w * static_cast<double>(i) / (n - 1);
  };

  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\""
      << kHeight << "\" viewBox=\"0 0 " << kWidth << " " << kHeight
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg << "<text x=\"" << kLeft << "\" y=\"24\" font-size=\"14\" font-weight=\"bold\">"
      << xml_escape("Error against layer: " + chart.title) << "</text>\n";
  // Decades: a grid line and a label each.
  for (int d = bottom_decade; d <= top_decade; ++d) {
    const std::string y = fixed(y_of(std::pow(10.0, d)));
    svg << "<line x1=\"" << kLeft << "\" y1=\"" << y << "\" x2=\"" << kLeft + plot_w << "\" y2=\""
        << y << "\" stroke=\"#ddd\"/>\n";
    svg << "<text x=\"" << kLeft - 6 << "\" y=\"" << y
        << "\" text-anchor=\"end\" dominant-baseline=\"middle\">1e" << d << "</text>\n";
  }
  for (size_t i = 0; i < chart.points.size(); ++i) {
    const std::string x = fixed(x_of(i));
    svg << "<line x1=\"" << x << "\" y1=\"" << kTop + plot_h << "\" x2=\"" << x << "\" y2=\""
        << kTop + plot_h + 4 << "\" stroke=\"#444\"/>\n";
    svg << "<text x=\"" << x << "\" y=\"" << kTop + plot_h + 18 << "\" text-anchor=\"middle\">"
        << xml_escape(chart.points[i]) << "</text>\n";
  }
  svg << "<rect x=\"" << kLeft << "\" y=\"" << kTop << "\" width=\"" << plot_w << "\" height=\""
      << plot_h << "\" fill=\"none\" stroke=\"#444\"/>\n";
  svg << "<text x=\"" << kLeft + plot_w / 2 << "\" y=\"" << kHeight - 10
      << "\" text-anchor=\"middle\">layer (each point: the worst tap of the layer)</text>\n";
  svg << "<text transform=\"translate(16 " << kTop + plot_h / 2
      << ") rotate(-90)\" text-anchor=\"middle\">relative L2 error vs the fp64 oracle</text>\n";
  for (size_t s = 0; s < chart.series.size(); ++s) {
    const LayerSeries& series = chart.series[s];
    const char* colour = kColours[s % (sizeof kColours / sizeof *kColours)];
    if (series.tolerance > 0) {
      const std::string y = fixed(y_of(series.tolerance));
      svg << "<line x1=\"" << kLeft << "\" y1=\"" << y << "\" x2=\"" << kLeft + plot_w
          << "\" y2=\"" << y << "\" stroke=\"" << colour
          << "\" stroke-dasharray=\"6 4\" stroke-width=\"1.5\"/>\n";
    }
    svg << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\"";
    for (size_t i = 0; i < series.errors.size() && i < chart.points.size(); ++i)
      svg << (i ? " " : "") << fixed(x_of(i)) << "," << fixed(y_of(series.errors[i]));
    svg << "\"/>\n";
    for (size_t i = 0; i < series.errors.size() && i < chart.points.size(); ++i)
      svg << "<circle cx=\"" << fixed(x_of(i)) << "\" cy=\"" << fixed(y_of(series.errors[i]))
          << "\" r=\"3\" fill=\"" << colour << "\"/>\n";
    // Legend: the line, the dashed tolerance, the label and verdict.
    const double ly = kTop + 10 + 38.0 * static_cast<double>(s);
    const double lx = kLeft + plot_w + 14;
    svg << "<line x1=\"" << lx << "\" y1=\"" << ly << "\" x2=\"" << lx + 22 << "\" y2=\"" << ly
        << "\" stroke=\"" << colour << "\" stroke-width=\"2\"/>\n";
    svg << "<text x=\"" << lx + 28 << "\" y=\"" << ly << "\" dominant-baseline=\"middle\">"
        << xml_escape(series.label + " (" + series.verdict + ")") << "</text>\n";
    svg << "<line x1=\"" << lx << "\" y1=\"" << ly + 16 << "\" x2=\"" << lx + 22 << "\" y2=\""
        << ly + 16 << "\" stroke=\"" << colour << "\" stroke-dasharray=\"6 4\"/>\n";
    svg << "<text x=\"" << lx + 28 << "\" y=\"" << ly + 16
        << "\" dominant-baseline=\"middle\" fill=\"#444\">its tolerance</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace pinmark
