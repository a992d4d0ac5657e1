// Prefill and decode speed of a device-resident bf16 Llama forward, printed beside the two
// ceilings of the card it runs on: the measured device-to-device copy bandwidth and the
// measured cuBLAS bf16 matrix rate. Weights, activations and the KV cache never leave the GPU;
// the weights are pinmark's synthetic ones (runtime/random.h), drawn on the device by the same
// counter-based generator so that the correctness check can compare with the CPU reference.
//
// Targets (printed, not asserted): decode at batch 1 reaches 80% of the bandwidth floor at
// Llama-3.2-1B dimensions and 50% for the 1024 x 8 model; prefill of 2048 tokens at Llama-3.2-1B
// dimensions reaches 75% of the cuBLAS rate in useful matrix FLOPs.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bench/device_llama.cuh"
#include "bench/measure.cuh"
#include "bench/reference_check.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/model_config.h"
#include "runtime/random.h"

namespace {

// Bits of two logit buffers.
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The logits of one decode step at `position`, the buffer filled with NaN first so that a step
// that writes nothing cannot pass for the one before it.
std::vector<float> decode_logits(DeviceModel& m, int position) {
  CHECK(cudaMemsetAsync(m.logits(), 0xff, sizeof(bf16) * m.logit_columns(), m.stream()));
  m.forward(1, position, 1);
  return download_logits(m, 1);
}

// The decode step at `position` under each of `options` settings (set(i) applies setting i),
// timed as graphs in alternation, `rounds` times each, so that the GPU's drift during the run
// falls on every setting alike: ms[i] holds setting i's times in round order.
std::vector<std::vector<double>> alternate_settings(DeviceModel& m, int position, int options,
                                                    int rounds,
                                                    const std::function<void(int)>& set,
                                                    const Timer& timer) {
  std::vector<std::vector<double>> ms(options);
  for (int round = 0; round < rounds; ++round)
    for (int i = 0; i < options; ++i) {
      set(i);
      ms[i].push_back(timer.graph_ms([&] { m.forward(1, position, 1); }));
    }
  return ms;
}

// The persistent step's logits at position `pos` against the five kernels a layer with the
// attention it runs (clusters of 16 x 256 threads): the same sums in the same order, so the same
// bits. The model's attention kernel is left as it was, the persistent step off.
bool persistent_matches_five(DeviceModel& m, int pos) {
  const int cluster = m.attention_cluster(), threads = m.attention_threads();
  m.set_attention(16, 256);
  const std::vector<float> five = decode_logits(m, pos);
  m.set_attention(cluster, threads);
  m.set_persistent(true);
  const bool same = same_bits(decode_logits(m, pos), five);
  m.set_persistent(false);
  return same;
}

// The device forward's logits against the CPU reference on the same synthetic weights: every
// row of a short prompt (prefill path), then one decode step (decode path).
bool correctness_check(const Dims& d, cublasHandle_t blas, cudaStream_t stream) {
  const int prompt_len = 7;
  const std::vector<int> prompt = random_tokens(prompt_len, d.vocab, "bench.check.prompt");
  const int next = random_tokens(1, d.vocab, "bench.check.next")[0];
  std::printf("correctness check (%s, %d-token prompt + 1 decode step) vs CPU bf16 reference...\n",
              d.name, prompt_len);
  std::fflush(stdout);
  const pinmark::bench::ReferenceLogits ref =
      pinmark::bench::reference_logits(to_config(d, 64), prompt, next);

  DeviceModel m(d, prompt_len, prompt_len + 1, blas, stream);
  // Poison: bf16 0xffff is a NaN, so an unwritten logit fails the check.
  CHECK(cudaMemsetAsync(m.logits(), 0xff, sizeof(bf16) * prompt_len * d.vocab, stream));
  upload_tokens(m, prompt, stream);
  m.forward(prompt_len, 0, prompt_len);
  CHECK(cudaStreamSynchronize(stream));
  const double e_prefill = rel_l2(download_logits(m, prompt_len), ref.prompt);
  // The fused attention against the unfused one on the last layer's inputs: the whole prompt,
  // then its first 3 query rows placed at positions 4 ... 6 (a prefill that continues a cache).
  const double e_att = m.compare_attention(d.layers - 1, prompt_len, 0);
  const double e_att_cont = m.compare_attention(d.layers - 1, 3, prompt_len - 3);
  upload_tokens(m, {next}, stream);
  const std::vector<float> decoded = decode_logits(m, prompt_len);
  const double e_decode = rel_l2(decoded, ref.next);
  // The same step again (it rewrites its own cache row with the same values): the decode
  // kernels fix every order of summation, so the bits must not move.
  const std::vector<float> again = decode_logits(m, prompt_len);
  const bool same = same_bits(again, decoded);
  // The persistent step against the five kernels a layer it replaces.
  bool step_same = true;
  if (m.persistent_blocks() > 0 && cluster_attention_fits<64>(16, 256)) {
    step_same = persistent_matches_five(m, prompt_len);
    std::printf("  decode step as one persistent kernel (%d blocks) vs five kernels a layer: %s\n",
                m.persistent_blocks(), step_same ? "same bits" : "bits differ: FAIL");
  } else {
    std::printf("  decode step as one persistent kernel: cannot run here\n");
  }
  const bool att_ok = e_att < 1e-2 && e_att_cont < 1e-2;
  const bool ok = e_prefill < 3e-2 && e_decode < 3e-2 && att_ok && same && step_same;
  std::printf("  flash vs unfused attention rel L2 (layer %d): 7 rows at 0 %.3e, 3 rows at 4 %.3e"
              " (expect ~1e-3): %s\n",
              d.layers - 1, e_att, e_att_cont, att_ok ? "PASS" : "FAIL");
  std::printf("  decode step run twice: %s\n", same ? "same bits" : "bits differ: FAIL");
  std::printf("  logits rel L2: prefill %.3e, decode %.3e  (bf16 expect ~1e-2): %s\n", e_prefill,
              e_decode, ok ? "PASS" : "FAIL");
  return ok;
}

// The cluster attention past one tile a block (more than 16 x kClusterKeys keys, where its online
// softmax carries the running max and sum across tiles) against the split kernel, which has no
// tiles: the small model's decode step at position 4500 after a 4500-token prefill, logits of
// each kernel on the same cache.
bool long_context_check(const Dims& d, cublasHandle_t blas, cudaStream_t stream) {
  const int prompt_len = 4500;
  DeviceModel m(d, prompt_len, prompt_len + 1, blas, stream);
  if (m.attention_cluster() == 0) {
    std::printf("  long context: no cluster kernel on this device, nothing to compare\n");
    return true;
  }
  upload_tokens(m, random_tokens(prompt_len, d.vocab, "bench.long.prompt"), stream);
  m.forward(prompt_len, 0, 1);
  upload_tokens(m, random_tokens(1, d.vocab, "bench.long.next"), stream);
  auto decode_with = [&](int cluster, int threads) {
    m.set_persistent(cluster < 0);
    if (cluster >= 0) m.set_attention(cluster, threads);
    return decode_logits(m, prompt_len);
  };
  const int chosen_cluster = m.attention_cluster(), chosen_threads = m.attention_threads();
  const std::vector<float> split = decode_with(0, kSplitThreads);
  bool ok = true;
  for (const auto& shape : kClusterShapes) {
    if (!cluster_attention_fits<64>(shape[0], shape[1])) continue;
    const double e = rel_l2(decode_with(shape[0], shape[1]), split);
    ok = ok && e < 1e-2;
    std::printf("  long context (%d keys, %d a block in tiles of %d): cluster of %d x %d threads "
                "vs split, decode logits rel L2 %.3e (expect <= ~1e-3): %s\n",
                prompt_len + 1, (prompt_len + 1 + shape[0] - 1) / shape[0], kClusterKeys,
                shape[0], shape[1], e, e < 1e-2 ? "PASS" : "FAIL");
  }
  if (m.persistent_blocks() > 0) {
    const double e = rel_l2(decode_with(-1, 0), split);
    ok = ok && e < 1e-2;
    std::printf("  long context (%d keys, %d a block in tiles of %d): persistent step vs split, "
                "decode logits rel L2 %.3e (expect <= ~1e-3): %s\n",
                prompt_len + 1, (prompt_len + 1 + kStepSplits - 1) / kStepSplits, kClusterKeys,
                e, e < 1e-2 ? "PASS" : "FAIL");
  }
  m.set_persistent(false);
  m.set_attention(chosen_cluster, chosen_threads);
  return ok;
}

// The speed each model is held to, in percent: decode of its bandwidth floor, prefill of the
// cuBLAS rate (0: none set).
struct Targets {
  double decode, prefill;
};
Targets targets_for(const Dims& d) { return &d == &kLlama1B ? Targets{80, 75} : Targets{50, 0}; }

bool& invariance_ok() {
  static bool ok = true;
  return ok;
}

bool& attention_check_ok() {
  static bool ok = true;
  return ok;
}

// Whether every decode attention kernel gave the default kernel's logits within bf16 rounding.
bool& decode_kernels_ok() {
  static bool ok = true;
  return ok;
}


std::vector<std::string>& batch_summary() {
  static std::vector<std::string> lines;
  return lines;
}

// Decode of several sequences in one step: kMaxBatch sequences, each prefilled with a prompt of
// its own of `context` tokens, then one step for the first `batch` of them at position
// `context`, as a graph (timed as the batch-1 decode). The floor reads every weight once and
// each sequence's K and V. Then batch invariance: each sequence's logits from the batch of
// kMaxBatch against the same step with the sequence alone, bit for bit.
void bench_batched_decode(const Dims& d, const Ceilings& c, cublasHandle_t blas,
                          cudaStream_t stream, const Timer& timer, int context) {
  DeviceModel m(d, context, context + 1, blas, stream, {}, {}, kMaxBatch);
  for (int b = 0; b < kMaxBatch; ++b) {
    const std::string name = "bench.prompt." + std::to_string(b);
    upload_tokens(m, random_tokens(context, d.vocab, name.c_str()), stream);
    m.forward(context, 0, 1, nullptr, b);
  }
  const std::vector<int> next = random_tokens(kMaxBatch, d.vocab, "bench.decode.batch");
  const double weight_bytes = 2.0 * static_cast<double>(total_params(d));
  const double kv_bytes = 2.0 * d.layers * (context + 1) * kv_dim(d) * 2.0;
  std::printf("  decode of several sequences, each at context %d (graph):\n", context);
  std::printf("    %5s %10s %10s %10s %9s %8s\n", "batch", "ms/step", "tokens/s", "GB/step",
              "floor ms", "% floor");
  for (int batch = 1; batch <= kMaxBatch; batch *= 2) {
    upload_tokens(m, std::vector<int>(next.begin(), next.begin() + batch), stream);
    const std::vector<int> positions(batch, context);
    m.decode(0, positions);  // eagerly first: a kernel's first launch may set its attributes
    const double ms = timer.graph_ms([&] { m.decode(0, positions); });
    const double bytes = weight_bytes + batch * kv_bytes;
    const double floor_ms = bytes / c.bandwidth * 1e3;
    std::printf("    %5d %10.3f %10.0f %10.3f %9.3f %7.1f%%\n", batch, ms, batch * 1e3 / ms,
                bytes * 1e-9, floor_ms, 100.0 * floor_ms / ms);
    char line[256];
    std::snprintf(line, sizeof line, "| %-18s | %5d | %8.3f | %9.0f | %8.3f | %7.1f%% |", d.name,
                  batch, ms, batch * 1e3 / ms, floor_ms, 100.0 * floor_ms / ms);
    batch_summary().push_back(line);
  }
  // Batch invariance.
  upload_tokens(m, next, stream);
  m.decode(0, std::vector<int>(kMaxBatch, context));
  const std::vector<float> together = download_logits(m, kMaxBatch);
  int same = 0;
  for (int b = 0; b < kMaxBatch; ++b) {
    upload_tokens(m, {next[b]}, stream);
    m.decode(b, {context});
    const std::vector<float> alone = download_logits(m, 1);
    const std::vector<float> row(together.begin() + int64_t{b} * d.vocab,
                                 together.begin() + int64_t{b + 1} * d.vocab);
    same += same_bits(alone, row);
  }
  std::printf("  batch invariance: %d of %d sequences give the same bits alone as in a batch of "
              "%d%s\n",
              same, kMaxBatch, kMaxBatch, same == kMaxBatch ? "" : ": FAIL");
  if (same != kMaxBatch) invariance_ok() = false;
}

// What batch invariance costs in the products: the decode step's matrix-vector kernel
// (decode_gemv, one fixed order of summation for every batch size) against cuBLAS GemmEx (bf16,
// fp32 accumulation, which chooses its kernel by shape) on the largest product of the model, its
// fused gate/up matrix [2 inter, hidden], for 1 to 8 rows of input; and whether each keeps a
// row's bits when the batch grows.
void bench_gemv_cost(const Dims& d, const Ceilings& c, cublasHandle_t blas, cudaStream_t stream,
                     const Timer& timer) {
  const int k = d.hidden, rows = 2 * d.inter;
  bf16 *w, *x, *y;
  CHECK(cudaMalloc(&w, sizeof(bf16) * int64_t{rows} * k));
  CHECK(cudaMalloc(&x, sizeof(bf16) * int64_t{kMaxBatch} * k));
  CHECK(cudaMalloc(&y, sizeof(bf16) * int64_t{kMaxBatch} * rows));
  fill(stream, w, int64_t{rows} * k, "bench.gemv.w", 0.05);
  fill(stream, x, int64_t{kMaxBatch} * k, "bench.gemv.x", 1.0);
  auto ours = [&](int batch) {
    launch_decode_gemv<8, 1, 8>(batch, stream, x, nullptr, 0.0f, w, k, rows / 2,
                                ToRows<2>{y, rows, false});
  };
  auto theirs = [&](int batch) { gemm(blas, x, w, batch, k, rows, y); };
  // Row `row` of a `batch`-row product, as floats.
  auto row_of = [&](const std::function<void(int)>& product, int batch, int row) {
    product(batch);
    std::vector<uint16_t> raw(rows);
    CHECK(cudaMemcpyAsync(raw.data(), y + int64_t{row} * rows, rows * sizeof(bf16),
                          cudaMemcpyDeviceToHost, stream));
    CHECK(cudaStreamSynchronize(stream));
    return std::vector<uint16_t>(raw);
  };
  std::printf("  batch invariance's cost, %s's gate/up product [%d x %d], bf16 (us per product):\n",
              d.name, rows, k);
  std::printf("    %5s %12s %8s %12s %8s %24s\n", "batch", "decode_gemv", "GB/s", "cuBLAS",
              "GB/s", "row bits as batch 1");
  const double bytes = 2.0 * rows * k;
  for (int batch = 1; batch <= kMaxBatch; batch *= 2) {
    const int reps = 20;
    const double us_ours = timer.median_ms(3, 11, [&] {
                             for (int i = 0; i < reps; ++i) ours(batch);
                           }) * 1e3 / reps;
    const double us_theirs = timer.median_ms(3, 11, [&] {
                               for (int i = 0; i < reps; ++i) theirs(batch);
                             }) * 1e3 / reps;
    // The last row of this batch against the same row computed alone (x shifted so that it is
    // row 0 of a batch of 1).
    const int last = batch - 1;
    const std::vector<uint16_t> ours_batch = row_of(ours, batch, last);
    const std::vector<uint16_t> theirs_batch = row_of(theirs, batch, last);
    bf16* const x0 = x;
    x = x0 + int64_t{last} * k;
    const std::vector<uint16_t> ours_alone = row_of(ours, 1, 0);
    const std::vector<uint16_t> theirs_alone = row_of(theirs, 1, 0);
    x = x0;
    const bool ours_same = ours_batch == ours_alone, theirs_same = theirs_batch == theirs_alone;
    if (!ours_same) invariance_ok() = false;
    std::printf("    %5d %12.1f %8.0f %12.1f %8.0f %13s / %-10s\n", batch, us_ours,
                bytes / (us_ours * 1e-6) * 1e-9, us_theirs, bytes / (us_theirs * 1e-6) * 1e-9,
                ours_same ? "ours same" : "ours DIFFER",
                theirs_same ? "cuBLAS same" : "cuBLAS differ");
  }
  (void)c;
  CHECK(cudaFree(w));
  CHECK(cudaFree(x));
  CHECK(cudaFree(y));
}

// The decode step with each decode attention kernel the device runs (the split kernel with its
// last-block merge, and each shape of kClusterShapes), timed as graphs in alternation, twice
// each, in this run; each step's logits against the default kernel's. The model's kernel is left
// as it was.
void bench_decode_attention(DeviceModel& m, int context, double floor_ms, const Timer& timer) {
  const int chosen_cluster = m.attention_cluster(), chosen_threads = m.attention_threads();
  std::vector<std::pair<int, int>> kinds = {{0, kSplitThreads}};
  for (const auto& shape : kClusterShapes)
    if (cluster_attention_fits<64>(shape[0], shape[1])) kinds.push_back({shape[0], shape[1]});
  auto set = [&](int i) { m.set_attention(kinds[i].first, kinds[i].second); };
  const std::pair<int, int> chosen_kind = {chosen_cluster,
                                           chosen_cluster == 0 ? kSplitThreads : chosen_threads};
  m.set_attention(chosen_kind.first, chosen_kind.second);
  const std::vector<float> reference = decode_logits(m, context);
  const std::vector<std::vector<double>> ms =
      alternate_settings(m, context, static_cast<int>(kinds.size()), 2, set, timer);
  std::printf("  decode attention kernels, whole step (graph, alternated, best of 2):\n");
  std::printf("    %-34s %9s %8s %22s\n", "kernel", "ms/token", "% floor", "logits vs default");
  for (size_t i = 0; i < kinds.size(); ++i) {
    set(static_cast<int>(i));
    const std::vector<float> logits = decode_logits(m, context);
    const double best = *std::min_element(ms[i].begin(), ms[i].end());
    const bool same = same_bits(logits, reference);
    char name[64], diff[64];
    if (kinds[i].first == 0)
      std::snprintf(name, sizeof name, "split, %d keys a block", kSplitKeys);
    else
      std::snprintf(name, sizeof name, "cluster of %d blocks x %d threads", kinds[i].first,
                    kinds[i].second);
    const double e = rel_l2(logits, reference);
    if (kinds[i] == chosen_kind)
      std::snprintf(diff, sizeof diff, "(default)");
    else
      std::snprintf(diff, sizeof diff, "%s rel L2 %.2e%s", same ? "same bits," : "", e,
                    e < 1e-2 ? "" : ": FAIL");
    // Every kernel computes the same attention: one past bf16's rounding is broken.
    if (!(e < 1e-2)) decode_kernels_ok() = false;
    std::printf("    %-34s %9.3f %7.1f%% %22s\n", name, best, 100.0 * floor_ms / best, diff);
  }
  m.set_attention(chosen_kind.first, chosen_kind.second);
}

void print_breakdown(const char* title, const std::vector<double>& ms,
                     const std::vector<double>& floor_ms) {
  std::printf("  %s breakdown (events between ops; adds launch gaps):\n", title);
  std::printf("    %-12s %10s %10s %8s\n", "part", "ms", "floor ms", "% floor");
  for (int p = 0; p < kParts; ++p)
    std::printf("    %-12s %10.3f %10.3f %7.1f%%\n", kPartNames[p], ms[p], floor_ms[p],
                100.0 * floor_ms[p] / ms[p]);
}

// Medians of `options` ways of running a part of the prefill, each timed alone (a median of 5
// launches) and in one whole eager prefill, interleaved at the finest grain so that the clocks'
// drift over the run falls on every option alike: 15 rounds, in each every option in turn
// (select(i), then the part, then the prefill); each figure the median over the rounds, in ms.
struct Interleaved {
  std::vector<double> alone, prefill;
};
Interleaved time_interleaved(const Timer& timer, size_t options,
                             const std::function<void(size_t)>& select,
                             const std::function<void()>& part,
                             const std::function<void()>& prefill) {
  std::vector<std::vector<double>> alone(options), whole(options);
  for (int round = 0; round < 15; ++round)
    for (size_t i = 0; i < options; ++i) {
      select(i);
      alone[i].push_back(timer.median_ms(1, 5, part));
      whole[i].push_back(timer.median_ms(0, 1, prefill));
    }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  Interleaved out;
  for (size_t i = 0; i < options; ++i) {
    out.alone.push_back(median(alone[i]));
    out.prefill.push_back(median(whole[i]));
  }
  return out;
}

// A switch of the prefill (off, on) that must leave its bits as they are: the last layer's MLP
// alone and the whole prefill timed both ways, interleaved (time_interleaved), and the prefill
// logits' bits against the default's. The switch is left at `current`.
void bench_prefill_switch(DeviceModel& m, const Timer& timer, cudaStream_t stream, int prefill,
                          const char* title, const char* heading, const char* const (&names)[2],
                          bool current, const std::function<void(bool)>& set) {
  const Dims& d = m.dims();
  upload_tokens(m, random_tokens(prefill, d.vocab, "bench.prompt"), stream);
  std::vector<std::vector<float>> logits;
  for (const bool on : {false, true}) {
    set(on);
    m.forward(prefill, 0, 1);
    logits.push_back(download_logits(m, 1));
  }
  const Interleaved t = time_interleaved(
      timer, 2, [&](size_t i) { set(i == 1); }, [&] { m.prefill_mlp(d.layers - 1, prefill); },
      [&] { m.forward(prefill, 0, 1); });
  std::printf("  %s (layer %d's MLP alone and one eager prefill in turn, median of 15 rounds):\n"
              "    %-32s  MLP alone us  prefill ms  logits\n",
              title, d.layers - 1, heading);
  for (int i = 0; i < 2; ++i)
    std::printf("    %-32s %13.1f %11.3f  %s\n", names[i], t.alone[i] * 1e3, t.prefill[i],
                (i == 1) == current                      ? "(default)"
                : same_bits(logits[i], logits[current]) ? "same bits"
                                                         : "differ");
  set(current);
}

// The algorithm TunedGemm chose for each product shape the forward has run, beside
// cublasGemmEx's pick, each timed on the tuning operands (median of 5), as a share of the
// 8192^3 rate.
void print_product_choices(const DeviceModel& m, double gemm_rate) {
  std::printf("  products as tuned (us on random operands, median of 5; %% of the 8192^3 rate):\n"
              "    [n x k] x [k x m]              cublasGemmEx       %%      tuned       %%"
              "  same bits / offered  algorithm\n");
  for (const TunedGemm::Choice& c : m.product_choices()) {
    const double flops = 2.0 * c.n * c.k * static_cast<double>(c.m);
    char dims[48];
    std::snprintf(dims, sizeof dims, "[%d x %d] x [%d x %d]", c.n, c.k, c.k, c.m);
    std::printf("    %-30s %12.1f %7.1f %10.1f %7.1f  %8d / %-8d  %s\n", dims, c.gemm_ms * 1e3,
                100.0 * flops / (c.gemm_ms * 1e-3) / gemm_rate, c.chosen_ms * 1e3,
                100.0 * flops / (c.chosen_ms * 1e-3) / gemm_rate, c.same, c.offered,
                c.name.c_str());
  }
}

// One thread reads %globaltimer for 200 us: out[0] its smallest step (ns), out[1] the time
// spanned (ns), out[2] the SM clock cycles (clock64) over the same span.
__global__ void probe_clocks(unsigned long long* out) {
  const unsigned long long t0 = KernelTrace::clock_now();
  const long long c0 = clock64();
  unsigned long long prev = t0, now = t0, step = ~0ull;
  while (now - t0 < 200000) {
    now = KernelTrace::clock_now();
    if (now != prev) {
      step = min(step, now - prev);
      prev = now;
    }
  }
  out[0] = step;
  out[1] = now - t0;
  out[2] = static_cast<unsigned long long>(clock64() - c0);
}

// The SM clock in MHz, measured against %globaltimer; prints it and %globaltimer's resolution.
double measure_sm_mhz(cudaStream_t stream) {
  unsigned long long* dev = nullptr;
  CHECK(cudaMalloc(&dev, 3 * sizeof(unsigned long long)));
  unsigned long long at[3];
  for (int i = 0; i < 2; ++i) probe_clocks<<<1, 1, 0, stream>>>(dev);  // the first warms up
  CHECK(cudaMemcpyAsync(at, dev, sizeof at, cudaMemcpyDeviceToHost, stream));
  CHECK(cudaStreamSynchronize(stream));
  CHECK(cudaFree(dev));
  const double mhz = static_cast<double>(at[2]) / static_cast<double>(at[1]) * 1e3;
  std::printf("    clocks: %%globaltimer advances in steps of %llu ns; SM clock %.0f MHz "
              "(clock64 over %.0f us of it)\n",
              at[0], mhz, at[1] * 1e-3);
  return mhz;
}

void bench_model(const Dims& d, const Ceilings& c, cublasHandle_t blas, cudaStream_t stream,
                 const Timer& timer) {
  const int prefill = 2048, context = 2048;
  DeviceModel m(d, prefill, context + 1, blas, stream);
  const double H = d.hidden, L = d.layers, hd = d.head_dim, heads = d.heads;
  const double layer_params = static_cast<double>(layer_matmul_params(d));
  const double head_params = static_cast<double>(lm_head_params(d));
  const double weight_bytes = 2.0 * static_cast<double>(total_params(d));
  std::printf("\n== %s: hidden %d, %d layers, %d heads / %d KV, inter %d, vocab %d, %.3f B params"
              " (%.2f GB bf16)\n",
              d.name, d.hidden, d.layers, d.heads, d.kv_heads, d.inter, d.vocab,
              total_params(d) * 1e-9, weight_bytes * 1e-9);

  // Prefill: 2048 prompt tokens at batch 1, logits for the last one (what generation needs).
  upload_tokens(m, random_tokens(prefill, d.vocab, "bench.prompt"), stream);
  const double n = prefill;
  // Eager (median of 7) and as a graph (the median of 9 means of 20 replays, so that the
  // launches' host time drops out); the better of the two, as for decode below.
  const double eager_prefill_ms = timer.median_ms(2, 7, [&] { m.forward(prefill, 0, 1); });
  const double graph_prefill_ms = timer.graph_ms([&] { m.forward(prefill, 0, 1); });
  const double prefill_ms = std::min(eager_prefill_ms, graph_prefill_ms);
  const double gemm_flops = 2.0 * (layer_params * L * n + head_params);
  // Causal attention: query i meets i + 1 keys, 2 * hd FLOPs each for QK and for PV.
  const double attn_flops = 4.0 * hd * heads * L * n * (n + 1) / 2;
  const double flops = gemm_flops + attn_flops;
  const double rate = flops / (prefill_ms * 1e-3);
  std::printf("  prefill %d tokens: %.3f ms (graph %.3f, eager %.3f), %.0f tokens/s; matrix %.1f "
              "TFLOP (GEMM %.1f + attn %.2f) -> %.1f TFLOP/s = %.1f%% of cuBLAS rate\n",
              prefill, prefill_ms, graph_prefill_ms, eager_prefill_ms, n / (prefill_ms * 1e-3),
              flops * 1e-12, gemm_flops * 1e-12, attn_flops * 1e-12, rate * 1e-12,
              100.0 * rate / c.gemm_rate);
  {
    Profiler prof(stream);
    m.forward(prefill, 0, 1, &prof);
    std::vector<double> ms = prof.totals();
    const double act = 2.0 * n * H;  // one bf16 activation row set
    std::vector<double> fl(kParts);
    fl[kLayerGemm] = std::max(2.0 * layer_params * L * n / c.gemm_rate,
                              (2.0 * layer_params * L + 0.0) / c.bandwidth) * 1e3;
    fl[kAttention] = std::max(attn_flops / c.gemm_rate,
                              2.0 * n * L * (heads * hd * 2 + 2.0 * d.kv_heads * hd) /
                                  c.bandwidth) * 1e3;
    fl[kLmHead] = std::max(2.0 * head_params / c.gemm_rate, 2.0 * head_params / c.bandwidth) *
                  1e3;
    // Norms (read x, write h, twice a layer), rope (read qkv, write q, k, v), SwiGLU (read
    // gate and up, write act), the embedding gather.
    const double other_bytes =
        L * (4.0 * act + 4.0 * n * (q_dim(d) + 2 * kv_dim(d)) + 6.0 * n * d.inter) + 2.0 * act;
    fl[kOther] = other_bytes / c.bandwidth * 1e3;
    print_breakdown("prefill", ms, fl);
  }
  {
    // The last layer's queries and cache from the forward above: the full causal square, and
    // 1000 query rows continuing a cache of 1048 (an offset that is no multiple of the tiles).
    const double e_full = m.compare_attention(d.layers - 1, prefill, 0);
    const double e_cont = m.compare_attention(d.layers - 1, 1000, prefill - 1000);
    const bool ok = e_full < 1e-2 && e_cont < 1e-2;
    if (!ok) attention_check_ok() = false;
    std::printf("  flash vs unfused attention rel L2 (layer %d): %d rows at 0 %.3e, 1000 rows at"
                " %d %.3e (expect ~1e-3): %s\n",
                d.layers - 1, prefill, e_full, prefill - 1000, e_cont, ok ? "PASS" : "FAIL");
  }
  {
    // The prefill attention's kernels on the last layer's queries and cache: bits against the
    // default and error against the unfused path (both shapes of the check above), then the
    // kernel alone and the whole prefill.
    const int l = d.layers - 1;
    const FlashKernel chosen = m.flash_kernel();
    std::vector<FlashKernel> kernels = {FlashKernel::kMma16, FlashKernel::kMma32};
    if (kFlashWgmmaBuilt) kernels.push_back(FlashKernel::kWgmma);
    // Bits and errors first, on the queries and cache the default kernel's forward left.
    const std::vector<float> base_full = m.prefill_attention_output(l, prefill, 0);
    const std::vector<float> base_cont = m.prefill_attention_output(l, 1000, prefill - 1000);
    std::vector<std::string> checks;
    for (const FlashKernel k : kernels) {
      m.set_flash_kernel(k);
      const double e_full = m.compare_attention(l, prefill, 0);
      const double e_cont = m.compare_attention(l, 1000, prefill - 1000);
      const bool ok = e_full < 1e-2 && e_cont < 1e-2;
      if (!ok) attention_check_ok() = false;
      const bool same = same_bits(m.prefill_attention_output(l, prefill, 0), base_full) &&
                        same_bits(m.prefill_attention_output(l, 1000, prefill - 1000), base_cont);
      char line[96];
      std::snprintf(line, sizeof line, "%.3e %.3e %s  %s", e_full, e_cont, ok ? "PASS" : "FAIL",
                    k == chosen ? "(default)" : same ? "same" : "differ");
      checks.push_back(line);
    }
    const Interleaved t = time_interleaved(
        timer, kernels.size(), [&](size_t i) { m.set_flash_kernel(kernels[i]); },
        [&] { m.prefill_attention(l, prefill, 0); }, [&] { m.forward(prefill, 0, 1); });
    std::printf("  prefill attention kernels (layer %d; alone and one eager prefill in turn, median"
                " of 15 rounds):\n"
                "    kernel                      alone us  TFLOP/s  prefill ms  vs unfused"
                "            bits vs default\n",
                l);
    for (size_t i = 0; i < kernels.size(); ++i)
      std::printf("    %-26s %9.1f %8.0f %11.3f  %s\n", flash_kernel_name(kernels[i]),
                  t.alone[i] * 1e3, attn_flops / L / (t.alone[i] * 1e-3) * 1e-12, t.prefill[i],
                  checks[i].c_str());
    m.set_flash_kernel(chosen);
  }
  bench_prefill_switch(m, timer, stream, prefill, "prefill's own kernels", "launched",
                       {"plainly", "by programmatic dependent launch"}, m.prefill_pdl(),
                       [&](bool on) { m.set_prefill_pdl(on); });
  bench_prefill_switch(m, timer, stream, prefill, "prefill products", "algorithm",
                       {"cublasGemmEx's pick", "tuned (TunedGemm)"}, m.tuned_products(),
                       [&](bool on) { m.set_tuned_products(on); });
  print_product_choices(m, c.gemm_rate);

  // Decode: one token at position 2048 over a cache of 2048 filled by the prefill above, each
  // replay recomputing the same step, so every timed step has the same context.
  upload_tokens(m, random_tokens(prefill, d.vocab, "bench.prompt"), stream);
  m.forward(prefill, 0, 1);
  upload_tokens(m, random_tokens(1, d.vocab, "bench.decode"), stream);
  const int kv_len = context + 1;
  const double kv_bytes = 2.0 * L * kv_len * kv_dim(d) * 2.0;
  const double bytes = weight_bytes + kv_bytes;
  const double floor_ms = bytes / c.bandwidth * 1e3;
  const double eager_ms = timer.median_ms(3, 21, [&] { m.forward(1, context, 1); });
  // The five kernels a layer and, where it runs, the persistent step (decode_persistent.cuh),
  // alternated twice as graphs; each the better of its two.
  const bool persistent = m.persistent_blocks() > 0;
  double graph_ms = 1e30, step_ms = 1e30;
  for (int round = 0; round < 2; ++round) {
    graph_ms = std::min(graph_ms, timer.graph_ms([&] { m.forward(1, context, 1); }));
    if (!persistent) continue;
    m.set_persistent(true);
    step_ms = std::min(step_ms, timer.graph_ms([&] { m.forward(1, context, 1); }));
    m.set_persistent(false);
  }
  const double best = std::min(graph_ms, eager_ms);
  std::printf("  decode attention: %s\n",
              m.attention_cluster() > 0
                  ? ("clusters of " + std::to_string(m.attention_cluster()) + " blocks of " +
                     std::to_string(m.attention_threads()) + " threads")
                        .c_str()
                  : "split kernel");
  std::printf("  decode batch 1, context %d: %.3f ms/token (graph; eager %.3f), %.0f tokens/s;"
              " bytes/token %.3f GB (weights %.3f + KV %.4f), floor %.3f ms = %.0f tokens/s;"
              " %.1f%% of floor\n",
              context, graph_ms, eager_ms, 1e3 / best, bytes * 1e-9, weight_bytes * 1e-9,
              kv_bytes * 1e-9, floor_ms, 1e3 / floor_ms, 100.0 * floor_ms / best);
  if (persistent) {
    const bool same = persistent_matches_five(m, context);
    if (!same) decode_kernels_ok() = false;
    m.set_persistent(true);
    std::printf("  decode batch 1 as one persistent kernel (%d blocks x %d threads, L2 prefetch "
                "%d chunks ahead): %.3f ms/token (graph, alternated with the line above), %.1f%% "
                "of floor; logits vs five kernels a layer: %s\n",
                m.persistent_blocks(), kStepThreads, m.prefetch_chunks(), step_ms,
                100.0 * floor_ms / step_ms, same ? "same bits" : "bits differ: FAIL");
    // Where its time goes: the same kernel leaving parts out (its results are then wrong, so
    // only timed), each a graph.
    std::printf("    leaving parts out (timing only):");
    for (const auto& [bits, what] :
         {std::pair{kLeaveOutAttention, "no attention"},
          {kLeaveOutAttention | kLeaveOutWaits, "no attention, no waits"},
          {kLeaveOutAttention | kLeaveOutProducts, "no attention, no products"},
          {kLeaveOutAttention | kLeaveOutWaits | kLeaveOutProducts, "weights streamed only"},
          {kLeaveOutAttention | kLeaveOutWaits | kLeaveOutLoads, "products only, no loads"}}) {
      m.set_leave_out(bits);
      const double ms = timer.graph_ms([&] { m.forward(1, context, 1); });
      std::printf(" %s %.3f ms (%.1f%%);", what, ms, 100.0 * floor_ms / ms);
    }
    std::printf("\n");
    m.set_leave_out(0);
    // The step timed at each setting of one of its knobs, the knob then put back.
    auto sweep = [&](const char* title, std::initializer_list<int> values, int chosen,
                     const std::function<void(int)>& set) {
      std::printf("    %s:", title);
      for (int value : values) {
        set(value);
        const double ms = timer.graph_ms([&] { m.forward(1, context, 1); });
        std::printf(" %d: %.3f ms (%.1f%%);", value, ms, 100.0 * floor_ms / ms);
      }
      std::printf("\n");
      set(chosen);
    };
    sweep("L2 prefetch, chunks of 16 KB ahead of the ring", {0, 8, 32}, m.prefetch_chunks(),
          [&](int chunks) { m.set_prefetch_chunks(chunks); });
    sweep("rows a computing warp sums at once", {1, 2, 4}, m.rows_per_warp(),
          [&](int rows) { m.set_rows_per_warp(rows); });
    m.set_persistent(false);
  }
  {
    const int layers = d.layers;
    // Where a step of the five kernels a layer spends its time: each kernel's times (KernelTrace)
    // in one replay of the graph, averaged over the layers but the first and the last. A stage
    // runs from the end of the kernel before it (its last block's end) to its own end; wait is
    // from that end to the last return from the wait, early from the first start to that end.
    const char* stage_names[] = {"q/k/v", "attention", "o", "gate/up", "down"};
    const double sm_mhz = measure_sm_mhz(stream);
    const char* phase_names[KernelTrace::kPhases] = {"first tile in", "scores", "softmax",
                                                     "values",        "barrier", "merge"};
    const double blocks = d.kv_heads * std::max(m.attention_cluster(), 1);
    auto print_trace = [&](const char* setting) {
      std::printf("    five kernels%s, one replay traced (us, mean of layers 1 to %d; stage, "
                  "wait, early):",
                  setting, layers - 2);
      m.set_trace(true);
      timer.graph_ms([&] { m.forward(1, context, 1); });
      const auto times = m.trace();
      m.set_trace(false);
      double layer_us = 0.0;
      const double n = layers - 2;
      for (int i = 0; i < 5; ++i) {
        double stage = 0.0, wait = 0.0, early = 0.0;
        for (int l = 1; l + 1 < layers; ++l) {
          const int k = 5 * l + i;
          const double prev_end = times[k - 1].end;
          stage += (times[k].end - prev_end) * 1e-3;
          wait += (times[k].waited - prev_end) * 1e-3;
          early += (prev_end - times[k].first_start) * 1e-3;
        }
        layer_us += stage / n;
        std::printf(" %s %.2f %.2f %.2f |", stage_names[i], stage / n, wait / n, early / n);
      }
      std::printf(" layer %.2f, LM head %.2f\n", layer_us,
                  (times[5 * layers].end - times[5 * layers - 1].end) * 1e-3);
      if (m.attention_cluster() == 0) return;
      // The cluster attention's phases: when the last block ended each, from the q/k/v kernel's
      // end (%globaltimer), and each phase's mean length over the blocks (SM cycles at the clock
      // measured in this run).
      std::printf("      attention phases (us; last block's end after q/k/v's end / mean length "
                  "a block at %.0f MHz):",
                  sm_mhz);
      for (int k = 0; k < KernelTrace::kPhases; ++k) {
        double last = 0.0, mean = 0.0;
        for (int l = 1; l + 1 < layers; ++l) {
          const DeviceModel::KernelTimes& a = times[5 * l + 1];
          last += (a.phase_end[k] - times[5 * l].end) * 1e-3;
          mean += a.phase_sum[k] / blocks / sm_mhz;
        }
        std::printf(" %s %.2f / %.2f;", phase_names[k], last / n, mean / n);
      }
      std::printf("\n");
    };
    print_trace("");
    // One step run eagerly (not as a graph) inside a profiler range, so that `ncu
    // --profile-from-start off` profiles the kernels of exactly one decode step at this context
    // (docs/performance.md has the command line); outside a profiler the range does nothing.
    CHECK(cudaProfilerStart());
    m.forward(1, context, 1);
    CHECK(cudaStreamSynchronize(stream));
    CHECK(cudaProfilerStop());
    // A setting of the step that must leave its bits as they are: each option but the first
    // traced, then all timed in alternation (graphs, 3 rounds, the median of each), the logits'
    // bits compared with the first's. set(0) after.
    auto decode_switch = [&](const char* title, const std::vector<const char*>& names,
                             const std::function<void(int)>& set) {
      const int options = static_cast<int>(names.size());
      std::vector<std::vector<float>> logits;
      for (int i = 0; i < options; ++i) {
        set(i);
        logits.push_back(decode_logits(m, context));
      }
      for (int i = 1; i < options; ++i) {
        set(i);
        print_trace((std::string(", ") + title + ": " + names[i]).c_str());
      }
      std::vector<std::vector<double>> ms = alternate_settings(m, context, options, 3, set, timer);
      set(0);
      std::printf("    %s (graphs alternated, median of 3):", title);
      for (int i = 0; i < options; ++i) {
        std::sort(ms[i].begin(), ms[i].end());
        const bool same = same_bits(logits[i], logits[0]);
        if (!same) decode_kernels_ok() = false;
        std::printf(" %s %.3f ms (%.1f%%%s);", names[i], ms[i][1], 100.0 * floor_ms / ms[i][1],
                    i == 0 ? "" : same ? ", same bits" : ", bits differ: FAIL");
      }
      std::printf("\n");
    };
    decode_switch("o product started by the attention", {"after its wait", "after its values",
                                                          "after its merge"},
                  [&](int i) { m.set_attention_trigger(i); });
    std::printf("    five kernels, leaving kernels out (timing only):");
    for (const auto& [bits, what] :
         {std::pair{kSkipAttention, "no attention"},
          {kSkipQkv | kSkipAttention | kSkipO, "MLP and LM head only"},
          {kSkipMlp, "no MLP"},
          {kSkipQkv | kSkipAttention | kSkipO | kSkipMlp, "LM head only"}}) {
      m.set_leave_out(bits);
      const double ms = timer.graph_ms([&] { m.forward(1, context, 1); });
      std::printf(" %s %.3f ms;", what, ms);
    }
    m.set_leave_out(0);
    std::printf("\n");
  }
  bench_decode_attention(m, context, floor_ms, timer);
  {
    Profiler prof(stream);
    m.forward(1, context, 1, &prof);
    std::vector<double> ms = prof.totals();
    std::vector<double> fl(kParts);
    fl[kLayerGemm] = 2.0 * layer_params * L / c.bandwidth * 1e3;
    fl[kAttention] = kv_bytes / c.bandwidth * 1e3;
    fl[kLmHead] = 2.0 * head_params / c.bandwidth * 1e3;
    fl[kOther] = (2.0 * L * 2.0 * H * 2.0 * 2.0) / c.bandwidth * 1e3;
    print_breakdown("decode", ms, fl);
  }
  const Targets goal = targets_for(d);
  std::printf("  target decode >= %.0f%% of bandwidth floor: %s (%.1f%%)\n", goal.decode,
              100.0 * floor_ms / best >= goal.decode ? "met" : "NOT met", 100.0 * floor_ms / best);
  if (goal.prefill > 0)
    std::printf("  target prefill matrix work >= %.0f%% of cuBLAS rate: %s (%.1f%%)\n",
                goal.prefill, 100.0 * rate / c.gemm_rate >= goal.prefill ? "met" : "NOT met",
                100.0 * rate / c.gemm_rate);

  // The one-line summary gathered at the end.
  char line[512];
  std::snprintf(line, sizeof line,
                "| %-18s | %9.0f | %9.1f%% | %8.3f | %8.0f | %8.3f | %8.3f | %7.1f%% |",
                d.name, n / (prefill_ms * 1e-3), 100.0 * rate / c.gemm_rate, best, 1e3 / best,
                bytes * 1e-9, floor_ms, 100.0 * floor_ms / best);
  summary().push_back(line);

  bench_batched_decode(d, c, blas, stream, timer, context);
  bench_gemv_cost(d, c, blas, stream, timer);
}

}  // namespace

int main() {
  try {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      std::printf("llama_bench: no CUDA device\n");
      return 1;
    }
    cudaDeviceProp prop{};
    CHECK(cudaGetDeviceProperties(&prop, 0));
    cudaStream_t stream;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cublasHandle_t blas;
    CHECK(cublasCreate(&blas));
    CHECK(cublasSetStream(blas, stream));
    void* workspace = attach_blas_workspace(blas);
    const Timer timer{stream};

    std::printf("device: %s (%d SMs, %.0f MB L2)\n", prop.name, prop.multiProcessorCount,
                prop.l2CacheSize / 1048576.0);
    bool ok = correctness_check(kSmall, blas, stream);
    ok = long_context_check(kSmall, blas, stream) && ok;

    Ceilings c;
    c.bandwidth = measure_copy_bandwidth(stream, timer);
    c.gemm_rate = measure_gemm_rate(blas, stream, timer);
    std::printf("ceiling: copy bandwidth (1 GiB D2D, read + write) %.0f GB/s\n",
                c.bandwidth * 1e-9);
    std::printf("ceiling: cuBLAS bf16 GEMM 8192^3 (fp32 accumulate)  %.1f TFLOP/s\n",
                c.gemm_rate * 1e-12);
    std::fflush(stdout);

    for (const Dims* d : {&kLlama1B, &kSmall}) {
      bench_model(*d, c, blas, stream, timer);
      std::fflush(stdout);
    }

    std::printf("\n## llama_bench on %s\n", prop.name);
    const bool att_ok = attention_check_ok();
    const bool decode_ok = decode_kernels_ok();
    std::printf("copy bandwidth %.0f GB/s; cuBLAS bf16 %.1f TFLOP/s; correctness %s; flash "
                "attention vs unfused %s; decode attention kernels agree %s; prefill attention "
                "%s\n",
                c.bandwidth * 1e-9, c.gemm_rate * 1e-12, ok ? "PASS" : "FAIL",
                att_ok ? "PASS" : "FAIL", decode_ok ? "PASS" : "FAIL",
                kFlashPrefill ? "flash" : "unfused");
    std::printf("| %-18s | %9s | %10s | %8s | %8s | %8s | %8s | %8s |\n", "model",
                "prefill/s", "% cuBLAS", "dec ms", "dec tok/s", "GB/token", "floor ms",
                "% floor");
    for (const std::string& line : summary()) std::printf("%s\n", line.c_str());
    std::printf("\n| %-18s | %5s | %8s | %9s | %8s | %8s |\n", "model", "batch", "ms/step",
                "tokens/s", "floor ms", "% floor");
    for (const std::string& line : batch_summary()) std::printf("%s\n", line.c_str());
    std::printf("batch invariance (each sequence alone and in a batch of %d; decode_gemv at 1 to "
                "%d rows): %s\n",
                kMaxBatch, kMaxBatch, invariance_ok() ? "PASS" : "FAIL");
    CHECK(cublasDestroy(blas));
    CHECK(cudaFree(workspace));
    CHECK(cudaStreamDestroy(stream));
    return ok && att_ok && decode_ok && invariance_ok() ? 0 : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llama_bench: %s\n", e.what());
    return 1;
  }
}
