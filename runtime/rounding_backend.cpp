#include "runtime/rounding_backend.h"

#include "runtime/storing_backend.h"

namespace pinmark {
namespace {

class RoundingBackend final : public StoringBackend<float> {
 public:
  RoundingBackend(std::unique_ptr<Backend<float>> inner, DType storage)
      : StoringBackend<float>(std::move(inner)), storage_(storage) {}

 protected:
  // The inner backend rounds, where it keeps the values: so the activations it holds on a
  // device may stay there (Backend::hold_activations).
  void store(float* values, int64_t n, int) override { inner().round_stored(values, n, storage_); }
  void will_store(const float* values, int64_t n) override {
    inner().round_next(values, n, storage_);
  }
  void hold_activations(const float* a, int64_t count) override {
    inner().hold_activations(a, count);
  }
  void release_activations(const float* a) override { inner().release_activations(a); }
  void to_host(const float* a, int64_t first, int64_t count) override {
    inner().to_host(a, first, count);
  }
  void from_host(const float* a, int64_t first, int64_t count) override {
    inner().from_host(a, first, count);
  }
  // A cache is written by copying stored values, which need no rounding.
  void write_cache(float* cache, int64_t capacity, int64_t first, const float* src,
                   int64_t count) override {
    inner().write_cache(cache, capacity, first, src, count);
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
