// reference.json: any bytes in a checkpoint's reference.json give a check or a
// std::runtime_error naming the file, never a crash, a hang or a stack overflow.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "driver/hf_reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    std::string p = "/tmp/pinmark-reference-fuzz-XXXXXX";
    if (!::mkdtemp(p.data())) std::abort();
    return p;
  }();
  const std::string path = dir + "/reference.json";
  FILE* out = std::fopen(path.c_str(), "wb");
  if (!out) std::abort();
  if (size && std::fwrite(data, 1, size, out) != size) std::abort();
  std::fclose(out);
  // One sequence of two positions over a vocabulary of three, greedy continuation [1].
  const std::vector<std::vector<int>> prompts = {{0, 2}};
  std::vector<pinmark::SequenceOutput> oracle(1);
  oracle[0].logits = {{0.5, 1.5, -1.0}, {2.0, 0.25, 0.0}};
  oracle[0].generated = {1};
  try {
    pinmark::check_against_reference(dir, "ckpt", prompts, oracle, pinmark::Workload{});
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).find("ckpt/reference.json") == std::string::npos) std::abort();
  }
  return 0;
}
