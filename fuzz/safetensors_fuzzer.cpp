// The safetensors reader: any bytes as a file either open (and then every tensor of a readable
// dtype converts within the file's bytes) or are refused with std::runtime_error naming the
// file. Never a crash, a read out of bounds, or an allocation larger than the file implies.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "runtime/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    std::string p = "/tmp/pinmark-safetensors-fuzz-XXXXXX";
    const int fd = ::mkstemp(p.data());
    if (fd < 0) std::abort();
    ::close(fd);
    return p;
  }();
  FILE* out = std::fopen(path.c_str(), "wb");
  if (!out) std::abort();
  if (size && std::fwrite(data, 1, size, out) != size) std::abort();
  std::fclose(out);
  try {
    pinmark::SafetensorsFile file(path, "fuzzed.safetensors");
    for (const std::string& name : file.names()) {
      if (!file.storage_dtype(name)) continue;
      const pinmark::Tensor<double> t = file.read(name);
      // The header check bounds every tensor by the file's size.
      if (t.data.size() > size) std::abort();
    }
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).rfind("fuzzed.safetensors: ", 0) != 0) std::abort();
  }
  return 0;
}
