#include "driver/golden_rows.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>

#include "driver/plugin.h"

namespace pinmark {
namespace {

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t") - a + 1);
}

std::vector<std::string> section_lines(const Section& s) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= s.text.size()) {
    size_t end = s.text.find('\n', start);
    if (end == std::string::npos) end = s.text.size();
    std::string line = s.text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

std::vector<std::string> table_cells(const std::string& line) {
  std::vector<std::string> cells;
  size_t start = 1;
  for (size_t bar; (bar = line.find('|', start)) != std::string::npos; start = bar + 1)
    cells.push_back(trim(line.substr(start, bar - start)));
  return cells;
}

struct Provenance {
  std::string fingerprint, math_mode, unsupported;
  std::vector<std::string> devices;
};

// "- `label` (stale: ...): rest" -> label and rest.
bool entry_head(const std::string& line, std::string& label, std::string& rest) {
  if (line.rfind("- `", 0) != 0) return false;
  const size_t close = line.find('`', 3);
  if (close == std::string::npos) return false;
  label = line.substr(3, close - 3);
  size_t colon = close + 1;
  if (line.compare(colon, 2, " (") == 0) {  // " (stale: why)"
    colon = line.find(')', colon);
    if (colon == std::string::npos) return false;
    ++colon;
  }
  if (line.compare(colon, 2, ": ") != 0) return false;
  rest = line.substr(colon + 2);
  return true;
}

Provenance parse_entry(const std::string& rest) {
  Provenance p;
  const std::string fp = "fingerprint `";
  if (rest.rfind(fp, 0) == 0) {
    const size_t close = rest.find('`', fp.size());
    p.fingerprint = rest.substr(fp.size(), close == std::string::npos ? std::string::npos
                                                                        : close - fp.size());
    if (p.fingerprint == kNoFingerprint) p.fingerprint.clear();
    const size_t end = rest.rfind("; produced on:");
    // The text of a "; key: " field, up to the next field.
    auto field = [&](const std::string& key, size_t before) {
      const size_t at = rest.find(key);
      if (at == std::string::npos || at > before) return std::string();
      return rest.substr(at + key.size(), before - at - key.size());
    };
    const size_t unsupported_at = std::min(rest.find("; unsupported: "), end);
    p.math_mode = field("; matmul: ", unsupported_at);
    if (p.math_mode.empty()) p.math_mode = field("; computed as: ", unsupported_at);
    p.unsupported = field("; unsupported: ", end);
    return p;
  }
  // The one-line form: "DEVICE, matmul: MODE".
  const size_t m = rest.find(", matmul: ");
  p.devices.push_back(rest.substr(0, m));
  if (m != std::string::npos) p.math_mode = rest.substr(m + 10);
  return p;
}

}  // namespace

std::vector<GoldenRow> read_golden_rows(const Case& c) {
  std::vector<GoldenRow> rows;
  std::map<std::string, Provenance> provenance;
  for (const Section& s : c.sections) {
    if (s.name != "Numerics") continue;
    int verdict_column = -1;
    Provenance* current = nullptr;
    for (const std::string& line : section_lines(s)) {
      if (line.rfind("|", 0) == 0) {
        current = nullptr;
        std::vector<std::string> cells = table_cells(line);
        if (cells.empty()) continue;
        if (cells[0] == "target") {
          for (size_t i = 0; i < cells.size(); ++i)
            if (cells[i] == "verdict") verdict_column = static_cast<int>(i);
          continue;
        }
        if (cells[0].find_first_not_of("-: ") == std::string::npos) continue;
        GoldenRow row;
        row.label = cells[0];
        if (verdict_column >= 0 && verdict_column < static_cast<int>(cells.size())) {
          row.verdict_column = verdict_column;
          row.verdict = cells[verdict_column];
          const std::string mark = kStaleMark;
          if (row.verdict.size() > mark.size() &&
              row.verdict.compare(row.verdict.size() - mark.size(), mark.size(), mark) == 0) {
            row.marked_stale = true;
            row.verdict.resize(row.verdict.size() - mark.size());
          }
        }
        row.cells = std::move(cells);
        rows.push_back(std::move(row));
        continue;
      }
      std::string label, rest;
      if (entry_head(line, label, rest)) {
        current = &provenance[label];
        *current = parse_entry(rest);
      } else if (current && line.rfind("  - ", 0) == 0) {
        current->devices.push_back(line.substr(4));
      } else if (!trim(line).empty()) {
        current = nullptr;
      }
    }
  }
  for (GoldenRow& row : rows) {
    auto it = provenance.find(row.label);
    if (it == provenance.end()) continue;
    row.fingerprint = it->second.fingerprint;
    row.math_mode = it->second.math_mode;
    row.unsupported = it->second.unsupported;
    row.devices = it->second.devices;
  }
  return rows;
}

namespace {

std::string stale_reason(const std::string& recorded, const std::string& current) {
  if (recorded.empty()) return "measured before rows recorded what they measured";
  if (recorded == current) return "";
  const size_t a = recorded.find(", "), b = current.find(", ");
  const bool inputs = recorded.substr(0, a) != current.substr(0, b);
  const bool code = a == std::string::npos || b == std::string::npos ||
                    recorded.substr(a) != current.substr(b);
  if (inputs && code) return "the case's inputs and the code changed since it was measured";
  return inputs ? "the case's inputs changed since it was measured"
                : "the code changed since it was measured";
}

bool finite_cell(const std::string& cell) {
  return cell.find("nan") == std::string::npos && cell.find("inf") == std::string::npos;
}

// The smallest value a bucketed cell ("≤ 5e-03": rounded up to 1, 2 or 5 x 10^k) can stand
// for: the bucket below it (2e-03 here). nullopt for a cell that is not a bucket.
std::optional<double> bucket_floor(const std::string& cell) {
  const std::string prefix = "≤ ";
  if (cell.rfind(prefix, 0) != 0) return std::nullopt;
  const std::string number = cell.substr(prefix.size());
  char* end = nullptr;
  const double value = std::strtod(number.c_str(), &end);
  if (end == number.c_str() || *end != '\0' || !(value > 0)) return std::nullopt;
  // 1e-k and 2e-k sit one bucket above half their value, 5e-k above 2e-k.
  const double step = value / std::pow(10.0, std::floor(std::log10(value) + 1e-9));
  return step < 3 ? value / 2 : value * 2 / 5;
}

// Why a carried row fails here, judged by what it recorded and the tolerance the case has now;
// "" when it passes.
std::string carried_failure(const GoldenRow& g, double tolerance, double conditioning_bound) {
  if (g.cells.size() <= 2) return "records no errors to judge";
  if (g.verdict == "FAIL") return "records verdict FAIL";
  if (g.verdict == kUnsupported) return "";
  if (g.verdict == kIllConditioned) {
    if (!(conditioning_bound > tolerance))
      return "records verdict ill-conditioned, but the case is not ill-conditioned for it now";
    tolerance = conditioning_bound;
  } else if (g.verdict != "ok") {
    return "records an unknown verdict '" + g.verdict + "'";
  }
  if (!finite_cell(g.cells[1]) || !finite_cell(g.cells[2]))
    return "records errors that are not finite (" + g.cells[1] + ", " + g.cells[2] + ")";
  if (auto floor = bucket_floor(g.cells[1]); floor && *floor > tolerance) {
    char bound[32];
    std::snprintf(bound, sizeof bound, "%.1e", tolerance);
    return "records rel L2 " + g.cells[1] + ", past its tolerance " + bound;
  }
  return "";
}

TargetRow carried_row(const TargetRow& wanted, const GoldenRow& g, const std::string& fingerprint) {
  TargetRow row;
  row.target = wanted.target;
  row.label = g.label;
  row.carried = true;
  row.tolerance = wanted.tolerance;
  row.cells = g.cells;
  row.fingerprint = g.fingerprint;
  row.math_mode = g.math_mode;
  row.unsupported = g.unsupported;
  row.devices = g.devices;
  row.engine_unknown = wanted.engine_unknown;
  if (wanted.engine_unknown) {
    // No configuration says what the engine's code is: the row is judged by its inputs alone.
    const size_t recorded_code = g.fingerprint.find(", "), current_code = fingerprint.find(", ");
    row.stale = recorded_code == std::string::npos
                    ? stale_reason(g.fingerprint, fingerprint)
                    : stale_reason(g.fingerprint, fingerprint.substr(0, current_code) +
                                                      g.fingerprint.substr(recorded_code));
  } else {
    row.stale = stale_reason(g.fingerprint, fingerprint);
  }
  if (g.verdict_column >= 0)
    row.cells[g.verdict_column] = g.verdict + (row.stale.empty() ? "" : kStaleMark);
  row.conditioning_bound = wanted.conditioning_bound;
  row.carried_failure = carried_failure(g, wanted.tolerance, wanted.conditioning_bound);
  row.ok = row.carried_failure.empty();
  row.ill_conditioned = row.ok && g.verdict == kIllConditioned;
  return row;
}

}  // namespace

void carry_golden_rows(const Case& c, const std::string& fingerprint, CaseResult& result,
                       const std::function<std::string(const Target&)>& fingerprint_of) {
  const std::vector<GoldenRow> golden = read_golden_rows(c);
  std::vector<TargetRow> rows;
  for (TargetRow& row : result.numerics) {
    const std::string measured = fingerprint_of ? fingerprint_of(row.target) : fingerprint;
    if (row.ran) row.fingerprint = measured;
    // A target's rows keep the golden's order, a row measured here taking its own place, so
    // that machines which measure different device classes render the same file; a device class
    // the golden lacks goes first.
    std::vector<TargetRow> group;
    bool placed = false;
    for (const GoldenRow& g : golden) {
      if (!is_row_of(g.label, row.target) || g.verdict == kNotMeasured) continue;
      if (row.ran && g.label == row.label) {
        group.push_back(row);
        placed = true;
      } else {
        group.push_back(carried_row(row, g, measured));
      }
    }
    if ((row.ran && !placed) || group.empty()) group.insert(group.begin(), std::move(row));
    for (TargetRow& t : group) rows.push_back(std::move(t));
  }
  result.numerics = std::move(rows);
}

void add_unknown_engine_rows(const Case& c, CaseResult& result) {
  std::vector<TargetRow> added;
  for (const GoldenRow& g : read_golden_rows(c)) {
    const size_t first_space = g.label.find(' '), last_space = g.label.rfind(' ');
    if (first_space == std::string::npos || g.verdict == kNotMeasured) continue;
    const Target target{g.label.substr(0, first_space), g.label.substr(last_space + 1)};
    std::string why;
    if (parse_case_target(target.name(), why)) continue;  // pinmark's own (or a plug-in's)
    bool known = false;
    for (const TargetRow& row : result.numerics) known |= is_row_of(g.label, row.target);
    for (const TargetRow& row : added) known |= is_row_of(g.label, row.target);
    if (known) continue;
    const TargetRow* same_precision = nullptr;
    for (const TargetRow& row : result.numerics)
      if (!same_precision && row.target.precision == target.precision) same_precision = &row;
    if (!same_precision) continue;
    TargetRow row;
    row.target = target;
    row.label = target.name();
    row.tolerance = same_precision->tolerance;
    row.conditioning_bound = same_precision->conditioning_bound;
    row.engine_unknown = true;
    added.push_back(std::move(row));
  }
  for (TargetRow& row : added) result.numerics.push_back(std::move(row));
}

const GoldenRow* find_golden_row(const std::vector<GoldenRow>& rows, const std::string& label) {
  for (const GoldenRow& row : rows)
    if (row.label == label) return &row;
  return nullptr;
}

bool is_row_of(const std::string& label, const Target& target) {
  const size_t last_space = label.rfind(' ');
  return label.rfind(target.backend + " ", 0) == 0 && last_space != std::string::npos &&
         label.substr(last_space + 1) == target.precision;
}

}  // namespace pinmark
