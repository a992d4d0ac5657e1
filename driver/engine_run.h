// Engine targets (driver/engine_config.h) measured: the case exported into a request folder
// (driver/export.h) with request.json, the engine asked to compute it, and its outputs read
// back and judged against the oracle like any other target. docs/engines.md is the exchange.
#pragma once

#include <string>

#include "driver/case_file.h"
#include "driver/case_runner.h"
#include "driver/case_spec.h"

namespace pinmark {

// Measures every row of `result` whose target is an engine's, for case `c` of the file `path`
// (`spec` and `result` are what run_case made of it). An engine that is not available on this
// machine (it says so, or exits with status 77) leaves its rows unmeasured, to be carried from
// the golden. A failure (the engine cannot start, replies with an error, exits, times out,
// writes outputs that are missing, misnamed or of the wrong shape) adds an `unpinnable` problem
// to `result` naming the engine and its target, with the tail of the engine's stderr: the case
// fails and its golden is left as it is. Engines start once per process and stay up until it
// exits. PINMARK_KEEP_ENGINE_REQUESTS=1 keeps each request folder and names it on stderr;
// PINMARK_NO_ENGINES=1 starts no engine, so that every engine row is carried from the golden.
void run_engine_rows(const Case& c, const std::string& path, const CaseSpec& spec,
                     CaseResult& result);

// The code part of an engine row's fingerprint (driver/fingerprint.h): pinmark's code, the
// engine's command, the target's options and the digest of the engine's `code` files, so that
// a row carried from another machine is stale once any of them changed.
std::string engine_code_fingerprint(const EngineSpec& engine, const EngineTarget& target);

}  // namespace pinmark
