// `pinmark export CASE --out DIR`: a case's inputs and the fp64 oracle's outputs as
// safetensors, with the weights, config.json and a JSON index, so that a test suite elsewhere
// (pytest, GoogleTest) can check an engine against pinmark's oracle directly.
//
// A model case's folder:
//   inputs.safetensors  sequence.S.tokens [len] I64 (the prompt), sequence.S.positions [len] I64
//   oracle.safetensors  sequence.S.logits [len, vocab] F64 (every prompt position),
//                       sequence.S.decode_logits [decode - 1, vocab] F64 (when decode > 1),
//                       sequence.S.generated [decode] I64 (greedy tokens),
//                       sequence.S.taps.NAME F64 (every tap of the sequence's first forward call)
//   model.safetensors   the synthetic weights, F64, under Hugging Face names and layouts
//                       (a checkpoint case names its folder in index.json instead)
//   config.json         the Hugging Face config the case resolves to
//   index.json          every file and tensor (name, dtype, shape), and the provenance
// A kernel case's: inputs.safetensors (the op's inputs by the runtime's names: x, w, q, k, v,
// gate, up, positions), oracle.safetensors (output, F64), index.json.
#pragma once

#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>

#include "driver/case_file.h"

namespace pinmark {

struct ExportOptions {
  std::string target;  // FILE::slug as `pinmark list` prints it, or a case file
  std::string out;     // the folder to write
  bool force = false;  // replace a non-empty `out`
  std::string version;  // pinmark's, for the provenance
};

// Runs the export; returns the exit status: 0 written, 1 when the case cannot be exported (its
// file is invalid, it renders an Errors section, its oracle is not finite; of a file's cases,
// those are skipped and named, and only a file with none left is refused), 2 for an unknown
// case, an existing non-empty `out` without `force`, or a write that failed. Nothing is left
// beside `out`, and `out` holds the whole export or what it held before.
int export_command(const ExportOptions& options, std::ostream& out, std::ostream& err);

// Writes the export of case `c` of the file `path` into the existing folder `dir`; returns its
// index (what index.json holds). Throws std::runtime_error when the case cannot be exported
// (the message names the case) or a file cannot be written.
nlohmann::json export_case(const std::string& path, const Case& c, const std::string& dir,
                           const std::string& version);

}  // namespace pinmark
