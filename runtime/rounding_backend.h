// A backend that computes in fp32 through another backend and stores every kernel's output in
// a narrower type (bf16 or fp16), the way a GPU kernel writes its result to memory. The one
// rounding point of each op is listed in docs/numerics.md; attention scores stay in fp32 (a
// fused attention kernel never stores them), everything else is rounded on the way out.
#pragma once

#include <memory>

#include "runtime/backend.h"
#include "runtime/dtype.h"

namespace pinmark {

std::unique_ptr<Backend<float>> make_rounding_backend(std::unique_ptr<Backend<float>> inner,
                                                      DType storage);

}  // namespace pinmark
