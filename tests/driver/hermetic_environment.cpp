// The driver's command line reads CI, REGENERATE, PINMARK_FORCE, PINMARK_NO_ENGINES and the
// colour variables. Its
// tests must give the same verdict whatever the shell that runs them has set (CI pipelines
// set CI; `REGENERATE=1 ctest` sets REGENERATE for the goldens, not for these tests), so they
// start without them; a test that needs one sets it with test::ScopedEnv.
#include <gtest/gtest.h>

#include <cstdlib>

namespace {

class HermeticEnvironment : public testing::Environment {
 public:
  void SetUp() override {
    for (const char* name : {"CI", "REGENERATE", "PINMARK_FORCE", "PINMARK_NO_ENGINES", "FORCE_COLOR",
                             "NO_COLOR"})
      ::unsetenv(name);
  }
};

testing::Environment* const kHermetic =
    testing::AddGlobalTestEnvironment(new HermeticEnvironment);

}  // namespace
