// The JSON/config reader: any bytes as a case's Config block (and as its Inputs block) give a
// spec or problems, never a crash, an escaping exception, a stack overflow on deep nesting, or
// an allocation sized by a number in the input (the budget refuses those first).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "driver/case_spec.h"

namespace {

pinmark::Section json_section(const std::string& name, const std::string& literal, int line) {
  pinmark::Section s;
  s.name = name;
  s.line = line;
  s.blocks.push_back({"json", literal, line + 2});
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // The first byte picks whether the input is the Config block, the Inputs block or a Kernel.
  const int mode = size == 0 ? 0 : data[0] % 3;
  const std::string config =
      R"({"vocab_size": 32, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1, "num_attention_heads": 4})";
  pinmark::Case c;
  c.title = "Fuzzed";
  c.line = 3;
  if (mode == 2) {
    c.sections.push_back(json_section("Kernel", text, 5));
  } else {
    c.sections.push_back(json_section("Config", mode == 0 ? text : config, 5));
    c.sections.push_back(json_section("Inputs", mode == 1 ? text : R"({"prompts": [[1, 2]]})", 10));
  }
  try {
    const pinmark::CaseSpec spec = pinmark::read_case_spec(c);
    // A spec that can run has no problems; one that cannot says why.
    if ((spec.kind == pinmark::CaseSpec::Kind::invalid) == spec.problems.empty()) std::abort();
    for (const pinmark::CaseProblem& p : spec.problems)
      if (p.message.empty() || p.where.empty()) std::abort();
  } catch (...) {
    std::abort();  // every problem must be reported, not thrown
  }
  return 0;
}
