// The plug-in targets of this executable: pinmark::main's main() calls register_plugins() and
// then runs the normal `pinmark` command line, so `mykernels-pinmark run cases` pins them.
#include <memory>

#include "driver/plugin.h"
#include "mykernels/mykernels.h"

void pinmark::register_plugins() {
  pinmark::register_target("mykernels fp32", [] { return std::make_unique<mykernels::Kernels>(); });
  pinmark::register_target("mykernels bf16", [] { return std::make_unique<mykernels::Kernels>(); });
  pinmark::register_target("mykernels-wrong fp32",
                           [] { return std::make_unique<mykernels::MeanNormKernels>(); });
}
