#include "runtime/rounding_backend.h"

#include "runtime/storing_backend.h"

namespace pinmark {
namespace {

class RoundingBackend final : public StoringBackend<float> {
 public:
  RoundingBackend(std::unique_ptr<Backend<float>> inner, DType storage)
      : StoringBackend<float>(std::move(inner)), storage_(storage) {}

 protected:
  void store(float* values, int64_t n, int) override {
    round_in_place(storage_, values, n);
  }
  double stored_scalar(double s) override { return round_to(storage_, static_cast<float>(s)); }

 private:
  DType storage_;
};

}  // namespace

std::unique_ptr<Backend<float>> make_rounding_backend(std::unique_ptr<Backend<float>> inner,
                                                      DType storage) {
  return std::make_unique<RoundingBackend>(std::move(inner), storage);
}

}  // namespace pinmark
