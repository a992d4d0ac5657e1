// Prefill and decode of the device-resident bf16 Llama forward (device_llama.cuh) split over two
// GPUs of one machine by tensor parallelism (Megatron-LM's split, Shoeybi et al. 2019): each GPU
// holds half the query and KV heads, half the MLP width and half the LM head's vocabulary, and
// after o_proj and down_proj an NCCL all-reduce (bf16, sum) adds the two GPUs' partial products.
// Printed beside twice the single-GPU ceilings measured in the same run (the bandwidth floor of
// half the bytes per GPU, twice the cuBLAS bf16 rate), and beside the cost of the all-reduces
// alone. Weights are pinmark's synthetic ones: the logits are checked against the CPU reference
// first. NCCL is opened at run time (runtime/cuda/nccl_api.h); NVLink SHARP stays off.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/device_llama.cuh"
#include "bench/measure.cuh"
#include "bench/reference_check.h"
#include "runtime/cuda/nccl_api.h"

namespace {

constexpr int kRanks = 2;

Dims shard_dims(const Dims& d) {
  Dims s = d;
  s.heads /= kRanks;
  s.kv_heads /= kRanks;
  s.inter /= kRanks;
  return s;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Rank `rank`'s part of every synthetic tensor of the whole model `d`: drawn whole into
// `scratch` with the scale a single GPU uses, then its rows (q, k, v, gate, up) or columns (o,
// down) copied out; norms and the embedding whole.
WeightLoader shard_loader(const Dims& d, int rank, cudaStream_t stream, bf16* scratch) {
  return [=](bf16* out, int64_t count, const std::string& name) {
    const int64_t H = d.hidden, Q = q_dim(d), KV = kv_dim(d), I = d.inter;
    auto lin = [](int64_t in) { return std::sqrt(3.0 / static_cast<double>(in)); };
    if (ends_with(name, "norm.weight")) return fill(stream, out, count, name, 0.1, 1.0);
    if (ends_with(name, "embed_tokens.weight")) return fill(stream, out, count, name, 1.0);
    int64_t rows = 0, cols = 0;
    bool by_columns = false;
    if (ends_with(name, "q_proj.weight")) rows = Q, cols = H;
    if (ends_with(name, "k_proj.weight") || ends_with(name, "v_proj.weight")) rows = KV, cols = H;
    if (ends_with(name, "gate_proj.weight") || ends_with(name, "up_proj.weight"))
      rows = I, cols = H;
    if (ends_with(name, "o_proj.weight")) rows = H, cols = Q, by_columns = true;
    if (ends_with(name, "down_proj.weight")) rows = H, cols = I, by_columns = true;
    if (rows == 0 || rows * cols != count * kRanks)
      throw std::runtime_error("shard_loader: no split for " + name + " of " +
                               std::to_string(count) + " values");
    fill(stream, scratch, rows * cols, name, lin(cols));
    if (!by_columns) {
      CHECK(cudaMemcpyAsync(out, scratch + rank * count, count * sizeof(bf16),
                            cudaMemcpyDeviceToDevice, stream));
      return;
    }
    const int64_t part = cols / kRanks;
    CHECK(cudaMemcpy2DAsync(out, part * sizeof(bf16), scratch + rank * part, cols * sizeof(bf16),
                            part * sizeof(bf16), rows, cudaMemcpyDeviceToDevice, stream));
  };
}

// One GPU's stream, cuBLAS handle (with a workspace of its own, so that cuBLAS allocates
// nothing while a graph is captured) and NCCL communicator.
struct Rank {
  int index;
  const pinmark::NcclApi* nccl;
  ncclComm_t comm;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  void* workspace = nullptr;
  bf16* scratch = nullptr;

  void open(int64_t scratch_count) {
    CHECK(cudaSetDevice(index));
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CHECK(cublasCreate(&blas));
    CHECK(cublasSetStream(blas, stream));
    workspace = attach_blas_workspace(blas);
    CHECK(cudaMalloc(&scratch, scratch_count * sizeof(bf16)));
  }
  void close() {
    CHECK(cudaSetDevice(index));
    CHECK(cublasDestroy(blas));
    CHECK(cudaFree(workspace));
    CHECK(cudaFree(scratch));
    CHECK(cudaStreamDestroy(stream));
  }
  Shard shard(const Dims& d) const {
    Shard s;
    s.adds_residual = index == 0;
    s.vocab_first = index * (d.vocab / kRanks);
    s.vocab_count = d.vocab / kRanks;
    const pinmark::NcclApi* api = nccl;
    const ncclComm_t c = comm;
    s.all_reduce = [api, c](bf16* x, int64_t count, cudaStream_t st) {
      pinmark::nccl_check(*api, api->all_reduce(x, x, static_cast<size_t>(count), ncclBfloat16,
                                                ncclSum, c, st),
                          "ncclAllReduce");
    };
    return s;
  }
};

// Runs fn(rank) on one thread per GPU and rethrows the first failure.
void on_every_rank(std::vector<Rank>& ranks, const std::function<void(Rank&)>& fn) {
  std::vector<std::string> errors(ranks.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < ranks.size(); ++r)
    threads.emplace_back([&, r] {
      try {
        CHECK(cudaSetDevice(ranks[r].index));
        fn(ranks[r]);
      } catch (const std::exception& e) {
        errors[r] = "rank " + std::to_string(r) + ": " + e.what();
      }
    });
  for (std::thread& t : threads) t.join();
  for (const std::string& e : errors)
    if (!e.empty()) throw std::runtime_error(e);
}

// The logits of each rank's vocabulary half, [rows, vocab / 2] each, side by side.
std::vector<float> joined(const std::vector<std::vector<float>>& parts, int rows) {
  std::vector<float> out;
  const size_t width = parts[0].size() / rows;
  for (int i = 0; i < rows; ++i)
    for (const std::vector<float>& p : parts)
      out.insert(out.end(), p.begin() + i * width, p.begin() + (i + 1) * width);
  return out;
}

bool correctness_check(std::vector<Rank>& ranks, const Dims& d) {
  const int prompt_len = 7;
  const std::vector<int> prompt = random_tokens(prompt_len, d.vocab, "bench.check.prompt");
  const int next = random_tokens(1, d.vocab, "bench.check.next")[0];
  std::printf("correctness check (%s over %d GPUs, %d-token prompt + 1 decode step) vs CPU bf16 "
              "reference...\n",
              d.name, kRanks, prompt_len);
  std::fflush(stdout);
  const pinmark::bench::ReferenceLogits ref =
      pinmark::bench::reference_logits(to_config(d, 64), prompt, next);
  std::vector<std::vector<float>> prefill(kRanks), decode(kRanks);
  on_every_rank(ranks, [&](Rank& r) {
    DeviceModel m(shard_dims(d), prompt_len, prompt_len + 1, r.blas, r.stream,
                  shard_loader(d, r.index, r.stream, r.scratch), r.shard(d));
    upload_tokens(m, prompt, r.stream);
    m.forward(prompt_len, 0, prompt_len);
    CHECK(cudaStreamSynchronize(r.stream));
    prefill[r.index] = download_logits(m, prompt_len);
    upload_tokens(m, {next}, r.stream);
    m.forward(1, prompt_len, 1);
    CHECK(cudaStreamSynchronize(r.stream));
    decode[r.index] = download_logits(m, 1);
  });
  const double e_prefill = rel_l2(joined(prefill, prompt_len), ref.prompt);
  const double e_decode = rel_l2(joined(decode, 1), ref.next);
  const bool ok = e_prefill < 3e-2 && e_decode < 3e-2;
  std::printf("  logits rel L2: prefill %.3e, decode %.3e  (bf16 expect ~1e-2): %s\n", e_prefill,
              e_decode, ok ? "PASS" : "FAIL");
  return ok;
}

void bench_model(std::vector<Rank>& ranks, const Dims& d, const Ceilings& c) {
  const int prefill = 2048, context = 2048;
  const double L = d.layers, hd = d.head_dim, heads = d.heads, n = prefill;
  const double weight_bytes = 2.0 * static_cast<double>(total_params(d));
  const double gemm_flops =
      2.0 * (static_cast<double>(layer_matmul_params(d)) * L * n + lm_head_params(d));
  const double attn_flops = 4.0 * hd * heads * L * n * (n + 1) / 2;
  const int kv_len = context + 1;
  const double kv_bytes = 2.0 * L * kv_len * kv_dim(d) * 2.0;
  // Each GPU reads its half of every layer weight, of the LM head and of the KV cache.
  const double floor_ms = (weight_bytes + kv_bytes) / kRanks / c.bandwidth * 1e3;
  std::printf("\n== %s over %d GPUs: %d heads / %d KV and inter %d per GPU\n", d.name, kRanks,
              d.heads / kRanks, d.kv_heads / kRanks, d.inter / kRanks);
  double prefill_ms = 0, eager_ms = 0, graph_ms = 0, reduce_ms = 0;
  on_every_rank(ranks, [&](Rank& r) {
    const Timer timer{r.stream};
    DeviceModel m(shard_dims(d), prefill, context + 1, r.blas, r.stream,
                  shard_loader(d, r.index, r.stream, r.scratch), r.shard(d));
    upload_tokens(m, random_tokens(prefill, d.vocab, "bench.prompt"), r.stream);
    const double p_ms = timer.median_ms(2, 7, [&] { m.forward(prefill, 0, 1); });
    upload_tokens(m, random_tokens(1, d.vocab, "bench.decode"), r.stream);
    const double e_ms = timer.median_ms(3, 21, [&] { m.forward(1, context, 1); });
    const double g_ms = timer.graph_ms([&] { m.forward(1, context, 1); });
    // The decode step's all-reduces alone: two per layer of one hidden row.
    bf16* row = nullptr;
    CHECK(cudaMalloc(&row, d.hidden * sizeof(bf16)));
    CHECK(cudaMemsetAsync(row, 0, d.hidden * sizeof(bf16), r.stream));
    const Shard s = r.shard(d);
    const double a_ms = timer.median_ms(3, 21, [&] {
      for (int i = 0; i < 2 * d.layers; ++i) s.all_reduce(row, d.hidden, r.stream);
    });
    CHECK(cudaFree(row));
    if (r.index == 0) prefill_ms = p_ms, eager_ms = e_ms, graph_ms = g_ms, reduce_ms = a_ms;
  });
  const double rate = (gemm_flops + attn_flops) / (prefill_ms * 1e-3);
  const double best = std::min(graph_ms, eager_ms);
  std::printf("  prefill %d tokens: %.3f ms, %.0f tokens/s; %.1f TFLOP/s = %.1f%% of 2 x cuBLAS "
              "rate\n",
              prefill, prefill_ms, n / (prefill_ms * 1e-3), rate * 1e-12,
              100.0 * rate / (kRanks * c.gemm_rate));
  std::printf("  decode batch 1, context %d: %.3f ms/token (graph; eager %.3f), %.0f tokens/s; "
              "floor (half the bytes per GPU) %.3f ms; %.1f%% of floor\n",
              context, graph_ms, eager_ms, 1e3 / best, floor_ms, 100.0 * floor_ms / best);
  std::printf("  its %d all-reduces of one %d-value bf16 row alone: %.3f ms (%.1f us each)\n",
              2 * d.layers, d.hidden, reduce_ms, 1e3 * reduce_ms / (2 * d.layers));
  char line[256];
  std::snprintf(line, sizeof line,
                "| %-18s | %9.0f | %10.1f | %8.3f | %8.0f | %8.3f | %8.1f | %9.3f |",
                d.name, n / (prefill_ms * 1e-3), 100.0 * rate / (kRanks * c.gemm_rate), best,
                1e3 / best, floor_ms, 100.0 * floor_ms / best, reduce_ms);
  summary().push_back(line);
}

}  // namespace

int main() {
  try {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < kRanks) {
      std::printf("llama_bench_tp: needs %d CUDA devices, found %d\n", kRanks, devices);
      return 1;
    }
    std::string why;
    const pinmark::NcclApi* nccl = pinmark::nccl_api(why);
    if (!nccl) {
      std::printf("llama_bench_tp: %s\n", why.c_str());
      return 1;
    }
    ::setenv("NCCL_NVLS_ENABLE", "0", 0);
    ncclComm_t comms[kRanks];
    const int ids[kRanks] = {0, 1};
    pinmark::nccl_check(*nccl, nccl->comm_init_all(comms, kRanks, ids), "ncclCommInitAll");
    cudaDeviceProp prop{};
    CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("devices: %d x %s; NCCL %s (%s)\n", kRanks, prop.name, nccl->version.c_str(),
                nccl->library.c_str());

    const Dims& big = kLlama1B;
    const int64_t scratch = std::max(int64_t{big.inter} * big.hidden, q_dim(big) * big.hidden);
    std::vector<Rank> ranks;
    for (int r = 0; r < kRanks; ++r) {
      ranks.push_back(Rank{r, nccl, comms[r]});
      ranks.back().open(scratch);
    }
    const bool ok = correctness_check(ranks, kSmall);

    // One GPU's ceilings, measured here: the floors below are twice them.
    CHECK(cudaSetDevice(0));
    const Timer timer{ranks[0].stream};
    Ceilings c;
    c.bandwidth = measure_copy_bandwidth(ranks[0].stream, timer);
    c.gemm_rate = measure_gemm_rate(ranks[0].blas, ranks[0].stream, timer);
    std::printf("ceiling per GPU: copy bandwidth %.0f GB/s; cuBLAS bf16 GEMM 8192^3 %.1f TFLOP/s\n",
                c.bandwidth * 1e-9, c.gemm_rate * 1e-12);
    std::fflush(stdout);
    for (const Dims* d : {&kLlama1B, &kSmall}) {
      bench_model(ranks, *d, c);
      std::fflush(stdout);
    }

    std::printf("\n## llama_bench_tp on %d x %s\n", kRanks, prop.name);
    std::printf("per GPU: copy bandwidth %.0f GB/s; cuBLAS bf16 %.1f TFLOP/s; correctness %s\n",
                c.bandwidth * 1e-9, c.gemm_rate * 1e-12, ok ? "PASS" : "FAIL");
    std::printf("| %-18s | %9s | %10s | %8s | %8s | %8s | %8s | %9s |\n", "model", "prefill/s",
                "% 2xcuBLAS", "dec ms", "dec tok/s", "floor ms", "% floor", "reduce ms");
    for (const std::string& line : summary()) std::printf("%s\n", line.c_str());
    for (Rank& r : ranks) r.close();
    for (ncclComm_t comm : comms) (void)nccl->comm_destroy(comm);
    return ok ? 0 : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llama_bench_tp: %s\n", e.what());
    return 1;
  }
}
