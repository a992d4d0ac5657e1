// A CPU backend that mirrors each announced KV cache array (Backend::cache_written) as a
// device backend does, and attends over its mirror wherever the contract allows. A write the
// model does not announce, a release it forgets, or an array it releases twice shows up in
// the counts and checks below.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/cpu/cpu_backend.h"
#include "runtime/generate.h"
#include "runtime/model.h"
#include "runtime/storing_backend.h"
#include "runtime/weights.h"

namespace pinmark::test {

class MirroringBackend final : public StoringBackend<double> {
 public:
  MirroringBackend() : StoringBackend<double>(make_cpu_backend<double>()) {}

  void cache_written(const double* cache, int64_t capacity, int64_t first, int64_t count) override {
    EXPECT_LE(first + count, capacity) << "a write past the announced capacity";
    std::vector<double>& mirror = mirrors_[cache];
    if (first > static_cast<int64_t>(mirror.size())) return;
    mirror.resize(first);
    mirror.insert(mirror.end(), cache + first, cache + first + count);
  }
  void release_cache(const double* cache) override {
    EXPECT_EQ(mirrors_.erase(cache), 1u) << "an array released that was not announced";
  }
  void attention_scores(const double* q, const double* k, const int* positions, int n, int kv_len,
                        int heads, int kv_heads, int head_dim, double scale,
                        double* scores) override {
    StoringBackend::attention_scores(q, mirrored(k, int64_t{kv_len} * kv_heads * head_dim),
                                     positions, n, kv_len, heads, kv_heads, head_dim, scale,
                                     scores);
  }
  void attention_values(const double* probs, const double* v, int n, int kv_len, int heads,
                        int kv_heads, int head_dim, double* out) override {
    StoringBackend::attention_values(probs, mirrored(v, int64_t{kv_len} * kv_heads * head_dim), n,
                                     kv_len, heads, kv_heads, head_dim, out);
  }
  bool attention(const double* q, const double* k, const double* v, const int* positions,
                 const double* sinks, const AttentionParams& a, double* out) override {
    const int64_t count = int64_t{a.kv_len} * a.kv_heads * a.head_dim;
    return StoringBackend::attention(q, mirrored(k, count), mirrored(v, count), positions, sinks, a,
                                     out);
  }

  // The arrays announced and not yet released.
  std::set<const double*> arrays() const {
    std::set<const double*> out;
    for (const auto& entry : mirrors_) out.insert(entry.first);
    return out;
  }
  // Keys and values read from a mirror, from an array never announced, and from an announced
  // array past what was announced (a write the model did not announce).
  int reads_from_mirrors() const { return reads_; }
  int reads_unannounced() const { return unannounced_; }
  int reads_past_mirrors() const { return short_reads_; }

 protected:
  void store(double*, int64_t, int) override {}

 private:
  const double* mirrored(const double* host, int64_t count) {
    const auto it = mirrors_.find(host);
    if (it == mirrors_.end()) {
      ++unannounced_;
      return host;
    }
    if (static_cast<int64_t>(it->second.size()) < count) {
      ++short_reads_;
      return host;
    }
    ++reads_;
    for (int64_t i = 0; i < count; ++i)
      if (std::memcmp(&host[i], &it->second[i], sizeof(double)) != 0) {
        ADD_FAILURE() << "value " << i << " of an announced array changed unannounced";
        break;
      }
    return it->second.data();
  }

  std::map<const double*, std::vector<double>> mirrors_;
  int reads_ = 0, unannounced_ = 0, short_reads_ = 0;
};

// What a MirroringBackend counted over one generate() call.
struct MirroredRun {
  int reads_from_mirrors = 0, reads_unannounced = 0, reads_past_mirrors = 0;
  // Arrays still announced once generate() returned (its caches are dead by then, the model
  // not yet), and once the model died.
  size_t arrays_after_generate = 0, arrays_after_model = 0;
};

// Generates `prompts` with the model of config c and weights w on the plain CPU backend and on a
// MirroringBackend, and expects the same logits and tokens, bit for bit.
inline MirroredRun generate_over_mirrors(const ModelConfig& c, const Weights& w,
                                         const std::vector<std::vector<int>>& prompts,
                                         const GenerateOptions& options, const std::string& name) {
  auto plain = make_cpu_backend<double>();
  Model<double> reference(c, w, *plain);
  const std::vector<SequenceOutput> expected = generate(reference, prompts, options);
  MirroringBackend mirroring;
  MirroredRun run;
  {
    Model<double> model(c, w, mirroring);
    const std::vector<SequenceOutput> got = generate(model, prompts, options);
    run.arrays_after_generate = mirroring.arrays().size();
    EXPECT_EQ(got.size(), expected.size()) << name;
    for (size_t s = 0; s < got.size() && s < expected.size(); ++s) {
      EXPECT_EQ(got[s].logits, expected[s].logits) << name << ", sequence " << s;
      EXPECT_EQ(got[s].generated, expected[s].generated) << name << ", sequence " << s;
    }
  }
  run.arrays_after_model = mirroring.arrays().size();
  run.reads_from_mirrors = mirroring.reads_from_mirrors();
  run.reads_unannounced = mirroring.reads_unannounced();
  run.reads_past_mirrors = mirroring.reads_past_mirrors();
  return run;
}

}  // namespace pinmark::test
