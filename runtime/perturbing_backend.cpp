#include "runtime/perturbing_backend.h"

#include <cmath>

#include "runtime/dtype.h"
#include "runtime/random.h"
#include "runtime/storing_backend.h"

namespace pinmark {
namespace {

class PerturbingBackend final : public StoringBackend<double> {
 public:
  PerturbingBackend(std::unique_ptr<Backend<double>> inner, double unit_roundoff, uint64_t seed)
      : StoringBackend<double>(std::move(inner)), u_(unit_roundoff), seed_(seed) {}

 protected:
  void store(double* values, int64_t n, int reduction) override {
    perturb(values, n, u_ + accumulation(reduction));
  }
  void keep(double* values, int64_t n, int reduction) override {
    perturb(values, n, unit_roundoff(DType::f32) + accumulation(reduction));
  }

 private:
  static double accumulation(int reduction) {
    return unit_roundoff(DType::f32) * std::sqrt(static_cast<double>(reduction));
  }
  void perturb(double* values, int64_t n, double e) {
    for (int64_t i = 0; i < n; ++i) values[i] *= 1 + e * random_uniform(seed_, "perturbation", next_++);
  }

  double u_;
  uint64_t seed_;
  uint64_t next_ = 0;
};

}  // namespace

std::unique_ptr<Backend<double>> make_perturbing_backend(std::unique_ptr<Backend<double>> inner,
                                                         double unit_roundoff, uint64_t seed) {
  return std::make_unique<PerturbingBackend>(std::move(inner), unit_roundoff, seed);
}

}  // namespace pinmark
