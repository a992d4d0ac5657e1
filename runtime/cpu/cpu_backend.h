// The deterministic CPU reference backend. Every output element is computed by one thread in
// a fixed order, so results are bitwise identical across runs and thread counts, and a row's
// result does not depend on the other rows in the batch.
#pragma once

#include <memory>

#include "runtime/backend.h"

namespace pinmark {

template <class T>
std::unique_ptr<Backend<T>> make_cpu_backend();

}  // namespace pinmark
