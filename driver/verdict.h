// The verdict on a case, apart from whether its golden agrees: what fails it on every machine.
#pragma once

#include <string>
#include <vector>

#include "driver/case_runner.h"

namespace pinmark {

// Why the case fails whatever its golden says, one message each: a measured target outside its
// tolerance, a carried row that records a failure (verdict FAIL, an error that is NaN or
// infinite, a rel L2 bucket wholly past the tolerance the case has now), a sequence
// that disagrees with Hugging Face's logits, a problem that depends on the machine (never
// pinned in a golden); with `require_fresh`, also every stale and every unmeasured row.
// Regeneration can record a failure, never accept it.
std::vector<std::string> case_failures(const CaseResult& result, bool require_fresh = false);

}  // namespace pinmark
