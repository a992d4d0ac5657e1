// The rows of a golden's Numerics table, read back. A row this machine cannot measure (a GPU
// target on a machine without one) is carried over from the golden and still judged; a row it
// measures again keeps the list of every device that produced the same numbers.
//
// Under the table, each GPU row has a provenance entry:
//
//   - `cuda sm90 bf16`: fingerprint `inputs 1a2b3c4d5e6f, code 0a1b2c3d4e5f`; matmul: cuBLAS ...; produced on:
//     - NVIDIA H100 80GB HBM3, compute capability 9.0, CUDA runtime 13.0, driver 13.0, cuBLAS 13.1.0
//     - NVIDIA H200, compute capability 9.0, CUDA runtime 13.0, driver 13.0, cuBLAS 13.1.0
//
// and a stale row says why after its label: "- `cuda sm90 bf16` (stale: inputs changed): ...".
// An engine's row says "computed as: MODE" where a cuda row says "matmul: MODE", and one its
// engine does not run adds "; unsupported: WHY" (driver/engine_run.h).
// The one-line form older goldens hold ("- `cuda sm90 bf16`: DEVICE, matmul: MODE") reads as
// a row with no fingerprint.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "runtime/target.h"

namespace pinmark {

struct GoldenRow {
  std::string label;               // "cuda sm90 bf16"; a row never measured is "cuda bf16"
  std::vector<std::string> cells;  // the table cells, trimmed, label first
  int verdict_column = -1;         // index of the verdict in `cells`, -1 when there is none
  std::string verdict;             // the verdict cell without a "(stale)" mark
  bool marked_stale = false;
  // From its provenance entry (empty when it has none).
  std::string fingerprint;
  std::string math_mode;
  std::string unsupported;  // an engine's reason for not running the case
  std::vector<std::string> devices;
};

// The rows of the case's Numerics section, in table order; header and alignment rows are not
// rows. Never throws: lines that are not rows or entries are ignored.
std::vector<GoldenRow> read_golden_rows(const Case& c);

// The golden row labelled `label`, if any.
const GoldenRow* find_golden_row(const std::vector<GoldenRow>& rows, const std::string& label);

// Whether a row label belongs to `target`: "cuda sm90 bf16" and "cuda bf16" to cuda bf16.
bool is_row_of(const std::string& label, const Target& target);

// Completes `result.numerics` from the golden. Every measured row records `fingerprint`. A
// target this machine did not measure gets the golden's rows for it, each judged by what it
// recorded (FAIL, or errors that are NaN or infinite, fail the case here too) and stale when
// the fingerprint it was measured with is not `fingerprint`; with no such row it stays a row
// "not measured". A measured target keeps the golden's rows of other device classes, all in the
// golden's order with the measured row in its own place (first when the golden has no row of
// its device class), so machines that measure different classes render the same file.
// `fingerprint_of`, when given, is the fingerprint of each target's rows instead (an engine's
// rows have a code part of their own: driver/engine_run.h).
void carry_golden_rows(const Case& c, const std::string& fingerprint, CaseResult& result,
                       const std::function<std::string(const Target&)>& fingerprint_of = {});

// For a case that keeps the default targets where no pinmark-engines.json is found (a case file
// copied out of its repository): adds a target to `result.numerics`, not measured here and
// marked engine_unknown (stale only when the case's inputs changed: its engine's code is
// unknown), for each engine's target the golden holds rows of (a label whose
// backend is no built-in or registered target's), with the tolerance of the case's own target of
// that precision, so that carry_golden_rows carries those rows as they are instead of dropping
// them from the file. A label whose precision no target of the case has is left out.
void add_unknown_engine_rows(const Case& c, CaseResult& result);

// The verdict cell that marks a row never measured anywhere, and the mark of a stale row.
inline constexpr const char* kNotMeasured = "not measured";
// The verdict cell of an engine's target that its engine does not run for the case.
inline constexpr const char* kUnsupported = "unsupported";
// The verdict cell of a row past its tolerance but within its conditioning bound (numerics.h).
inline constexpr const char* kIllConditioned = "ill-conditioned";
inline constexpr const char* kStaleMark = " (stale)";
// The fingerprint written for a carried row that recorded none.
inline constexpr const char* kNoFingerprint = "none";

}  // namespace pinmark
