// libFuzzer target: regeneration's round trip on arbitrary bytes. A refused file is fine (it is
// never written); an accepted one must keep its prose and inputs byte for byte, read back as
// the same cases, and give the same bytes when regenerated a second time. A break aborts with
// what broke. tests/driver/round_trip_test.cpp checks the same property without clang.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "tests/support/round_trip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    pinmark::test::check_round_trip(text);
  } catch (const std::logic_error& e) {
    std::fprintf(stderr, "round trip broken: %s\n", e.what());
    std::abort();
  }
  return 0;
}
