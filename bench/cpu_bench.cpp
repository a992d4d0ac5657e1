// Speed of pinmark's CPU runtime in fp32, printed beside its peers, measured in one run:
//
//   cpu_bench [--model stories15M|stories110M] [--tokens N] [--threads LIST] [--gemm]
//   cpu_bench --write-llama2c FILE [--model M]     the same model as a llama2.c checkpoint
//   cpu_bench --write-tokenizer FILE               a 32000-token llama2.c tokenizer for it
//
// The model is Llama at the dimensions of llama2.c's TinyStories checkpoints (stories15M: dim
// 288, 6 layers, 6 heads; stories110M: dim 768, 12 layers, 12 heads; vocab 32000, tied
// embeddings) with pinmark's synthetic weights. Decode: greedy tokens after a one-token prompt,
// each a forward of one token through the KV cache. Prefill: one forward of N tokens. GEMM:
// y = x w^T for square N, GFLOP/s, beside OpenBLAS sgemm on one thread when built with it.
// Memory: the fp32 model built two ways, each in a process of its own (this program run again
// with --memory-of): from the synthetic fp64 weights, and from the same weights written as an F32
// safetensors checkpoint that the model reads in place (memory-mapped); peak, anonymous and
// file-backed resident memory printed beside the weights and the KV cache the model must hold.
// bench/llama2c_compare.sh runs llama2.c's run.c on the same model for the peer figure.
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "driver/safetensors_writer.h"
#include "runtime/checkpoint.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/model.h"
#include "runtime/random.h"
#include "runtime/rounding_backend.h"
#include "runtime/weights.h"

#ifdef PINMARK_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace {

using pinmark::ModelConfig;
using Clock = std::chrono::steady_clock;

ModelConfig stories(const std::string& name, int seq_len) {
  ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = 32000;
  c.max_position_embeddings = seq_len;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = true;
  c.seed = 15;
  if (name == "stories15M") {
    c.hidden_size = 288, c.intermediate_size = 768, c.num_hidden_layers = 6;
    c.num_attention_heads = 6, c.num_key_value_heads = 6;
  } else if (name == "stories110M") {
    c.hidden_size = 768, c.intermediate_size = 2048, c.num_hidden_layers = 12;
    c.num_attention_heads = 12, c.num_key_value_heads = 12;
  } else {
    throw std::runtime_error("unknown model '" + name + "' (stories15M or stories110M)");
  }
  return pinmark::with_defaults(c);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

template <class T>
int argmax(const T* row, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (row[i] > row[best]) best = i;
  return best;
}

// Tokens per second of `tokens` greedy decode steps after a one-token prompt.
template <class T>
double decode_rate(pinmark::Model<T>& model, const ModelConfig& c, int tokens) {
  pinmark::KVCache<T> cache(c, tokens + 1);
  int next = 1;
  next = argmax(model.forward({next}, cache).data.data(), c.vocab_size);
  const auto start = Clock::now();
  for (int t = 0; t < tokens - 1; ++t)
    next = argmax(model.forward({next}, cache).data.data(), c.vocab_size);
  return (tokens - 1) / seconds_since(start);
}

// Tokens per second of one forward of a `tokens`-token prompt: the median of 3 after one
// untimed run (the first pays the page faults of its fresh activation buffers, which
// glibc's allocator then keeps: up to twice the later runs' time on this machine).
template <class T>
double prefill_rate(pinmark::Model<T>& model, const ModelConfig& c, int tokens) {
  std::vector<int> prompt(tokens);
  for (int i = 0; i < tokens; ++i)
    prompt[i] = static_cast<int>(pinmark::random_bits(c.seed, "bench.prompt", i) % c.vocab_size);
  std::vector<double> rates;
  for (int run = 0; run < 4; ++run) {
    pinmark::KVCache<T> cache(c, tokens);
    const auto start = Clock::now();
    model.forward(prompt, cache);
    if (run > 0) rates.push_back(tokens / seconds_since(start));
  }
  std::sort(rates.begin(), rates.end());
  return rates[1];
}

// A field of /proc/self/status in MiB ("VmHWM", "RssAnon", "RssFile"; the kernel gives kB).
double status_mib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with(field + ":")) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  throw std::runtime_error("no " + field + " in /proc/self/status");
}

// The synthetic weights as a checkpoint directory: model.safetensors with every tensor F32.
void write_f32_checkpoint(const std::string& dir, const pinmark::Weights& weights) {
  pinmark::SafetensorsWriter file;
  file.set_metadata("format", "pt");
  for (const auto& [name, t] : weights)
    file.add_f32(name, t.shape, std::vector<float>(t.data.begin(), t.data.end()));
  file.write(dir + "/model.safetensors");
}

// --memory-of: build the fp32 model from `source` ("synthetic", or a checkpoint directory read
// in place), decode `tokens` tokens on one thread, print "peak anonymous file-backed" in MiB.
int memory_of(const std::string& source, const ModelConfig& c, int tokens) {
  auto backend = pinmark::make_cpu_backend<float>();
  std::unique_ptr<pinmark::Weights> synthetic;
  std::shared_ptr<const pinmark::WeightSource> weights;
  if (source == "synthetic") {
    synthetic = std::make_unique<pinmark::Weights>(pinmark::synthetic_weights(c));
    weights = std::make_shared<pinmark::WeightMap>(*synthetic);
  } else {
    weights = std::make_shared<pinmark::CheckpointWeights>(
        std::make_shared<const pinmark::Checkpoint>(source), c.model_type, c.tie_word_embeddings,
        pinmark::weight_shapes(c));
  }
  pinmark::Model<float> model(c, *weights, *backend);
  omp_set_num_threads(1);
  decode_rate(model, c, tokens);
  std::printf("%.1f %.1f %.1f\n", status_mib("VmHWM"), status_mib("RssAnon"), status_mib("RssFile"));
  return 0;
}

struct Memory {
  double peak = 0, anonymous = 0, file = 0;
};

// This program run again with --memory-of, so that each way of building starts from nothing.
Memory measure_memory(const std::string& model_name, int tokens, const std::string& source) {
  // popen runs a shell, whose own /proc/self/exe would be the shell: resolved here first.
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string command = "'" + self + "' --model " + model_name + " --tokens " +
                              std::to_string(tokens) + " --memory-of '" + source + "'";
  std::fflush(stdout);
  FILE* child = popen(command.c_str(), "r");
  if (!child) throw std::runtime_error("cannot run " + command);
  Memory m;
  const int fields = std::fscanf(child, "%lf %lf %lf", &m.peak, &m.anonymous, &m.file);
  if (pclose(child) != 0 || fields != 3) throw std::runtime_error(command + " failed");
  return m;
}

void gemm_table(const std::vector<int>& threads) {
  auto backend = pinmark::make_cpu_backend<float>();
  std::printf("\nGEMM y = x w^T, square N, fp32, GFLOP/s (median of 5)\n");
  std::printf("%6s", "N");
  for (int t : threads) std::printf("  pinmark %dt", t);
#ifdef PINMARK_HAVE_OPENBLAS
  std::printf("  OpenBLAS 1t  pinmark 1t / OpenBLAS");
#endif
  std::printf("\n");
  for (int n = 64; n <= 2048; n *= 2) {
    std::vector<float> x(int64_t{n} * n), w(x.size()), y(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = static_cast<float>(pinmark::random_uniform(1, "bench.x", i));
      w[i] = static_cast<float>(pinmark::random_uniform(1, "bench.w", i));
    }
    const double flops = 2.0 * n * static_cast<double>(n) * n;
    const int repeats = n <= 512 ? 5 : 3;
    auto median = [&](auto&& fn) {
      std::vector<double> t;
      fn();
      for (int r = 0; r < repeats; ++r) {
        const auto start = Clock::now();
        fn();
        t.push_back(seconds_since(start));
      }
      std::sort(t.begin(), t.end());
      return flops / t[t.size() / 2] / 1e9;
    };
    std::printf("%6d", n);
    double ours_1t = 0;
    for (int t : threads) {
      omp_set_num_threads(t);
      const double rate = median([&] { backend->matmul(x.data(), w.data(), n, n, n, y.data()); });
      if (t == 1) ours_1t = rate;
      std::printf("  %11.1f", rate);
    }
#ifdef PINMARK_HAVE_OPENBLAS
    openblas_set_num_threads(1);
    const double blas = median([&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, x.data(), n, w.data(),
                  n, 0.0f, y.data(), n);
    });
    std::printf("  %11.1f  %20.0f%%", blas, 100.0 * ours_1t / blas);
#else
    (void)ours_1t;
#endif
    std::printf("\n");
  }
#ifndef PINMARK_HAVE_OPENBLAS
  std::printf("(OpenBLAS not built in: install libopenblas-dev and reconfigure for its column)\n");
#endif
}

// llama2.c's checkpoint (run.c, read_checkpoint): a header of seven ints, then every weight in
// fp32 in its order; a positive vocab_size means the classifier is the embedding table.
void write_llama2c(const std::string& path, const ModelConfig& c, const pinmark::Weights& w) {
  std::ofstream out(path, std::ios::binary);
  const int header[7] = {c.hidden_size, c.intermediate_size, c.num_hidden_layers,
                         c.num_attention_heads, c.num_key_value_heads, c.vocab_size,
                         c.max_position_embeddings};
  out.write(reinterpret_cast<const char*>(header), sizeof header);
  auto put = [&](const std::string& name) {
    const auto& t = w.at(name);
    for (double v : t.data) {
      const float f = static_cast<float>(v);
      out.write(reinterpret_cast<const char*>(&f), sizeof f);
    }
  };
  auto each_layer = [&](const std::string& suffix) {
    for (int l = 0; l < c.num_hidden_layers; ++l)
      put("model.layers." + std::to_string(l) + "." + suffix);
  };
  put("model.embed_tokens.weight");
  each_layer("input_layernorm.weight");
  each_layer("self_attn.q_proj.weight");
  each_layer("self_attn.k_proj.weight");
  each_layer("self_attn.v_proj.weight");
  each_layer("self_attn.o_proj.weight");
  each_layer("post_attention_layernorm.weight");
  each_layer("mlp.gate_proj.weight");
  each_layer("mlp.down_proj.weight");
  each_layer("mlp.up_proj.weight");
  put("model.norm.weight");
  // The RoPE tables older checkpoints carried: run.c skips them.
  const std::vector<float> unused(int64_t{c.max_position_embeddings} * c.head_dim, 0.0f);
  out.write(reinterpret_cast<const char*>(unused.data()), unused.size() * sizeof(float));
  if (!out) throw std::runtime_error("cannot write " + path);
}

void write_tokenizer(const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  const int max_len = 8;
  out.write(reinterpret_cast<const char*>(&max_len), sizeof max_len);
  for (int i = 0; i < 32000; ++i) {
    const std::string piece = "<" + std::to_string(i) + ">";
    const float score = 0.0f;
    const int len = static_cast<int>(piece.size());
    out.write(reinterpret_cast<const char*>(&score), sizeof score);
    out.write(reinterpret_cast<const char*>(&len), sizeof len);
    out.write(piece.data(), len);
  }
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    out.push_back(std::stoi(text.substr(start, comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string model_name = "stories15M", llama2c, tokenizer, memory_source;
    int tokens = 256;
    bool gemm = false;
    std::vector<int> threads = {1, 2};
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&] {
        if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
        return std::string(argv[++i]);
      };
      if (a == "--help" || a == "-h") {
        std::printf(
            "usage: cpu_bench [--model stories15M|stories110M] [--tokens N] [--threads LIST] "
            "[--gemm]\n"
            "       cpu_bench --write-llama2c FILE [--model M]\n"
            "       cpu_bench --write-tokenizer FILE\n\n"
            "Decode: N greedy tokens, each one forward of one token through the KV cache, after "
            "a one-token prompt.\nPrefill: one forward of an N-token prompt. N is 256 unless "
            "--tokens says. LIST: thread counts, e.g. 1,2.\n--gemm adds y = x w^T GFLOP/s at "
            "64..2048 beside OpenBLAS sgemm on one thread (when built with it).\nThe peer "
            "figures: bench/llama2c_compare.sh runs llama2.c's run.c on the same weights.\n");
        return 0;
      }
      if (a == "--model") model_name = value();
      else if (a == "--tokens") tokens = std::stoi(value());
      else if (a == "--threads") threads = parse_list(value());
      else if (a == "--gemm") gemm = true;
      else if (a == "--write-llama2c") llama2c = value();
      else if (a == "--write-tokenizer") tokenizer = value();
      else if (a == "--memory-of") memory_source = value();
      else throw std::runtime_error("unknown argument " + a);
    }
    if (!tokenizer.empty()) {
      write_tokenizer(tokenizer);
      if (llama2c.empty()) return 0;
    }
    const ModelConfig c = stories(model_name, std::max(tokens, 256));
    if (!memory_source.empty()) return memory_of(memory_source, c, tokens);
    const pinmark::Weights weights = pinmark::synthetic_weights(c);
    if (!llama2c.empty()) {
      write_llama2c(llama2c, c, weights);
      return 0;
    }
    auto backend = pinmark::make_cpu_backend<float>();
    pinmark::Model<float> model(c, weights, *backend);
    double params = 0;
    for (const auto& [name, t] : weights) params += static_cast<double>(t.data.size());
    const double kv_mib = 2.0 * c.num_hidden_layers * (tokens + 1) * c.num_key_value_heads *
                          c.head_dim * sizeof(float) / (1 << 20);
    std::printf("pinmark CPU runtime, fp32, %s dimensions (%.1fM parameters): decode of %d "
                "tokens one at a time through the KV cache, prefill of a %d-token prompt; peers: "
                "bench/llama2c_compare.sh\n",
                model_name.c_str(), params / 1e6, tokens, tokens);
    std::printf("%8s  %14s  %14s\n", "threads", "decode tok/s", "prefill tok/s");
    for (int t : threads) {
      omp_set_num_threads(t);
      const double decode = decode_rate(model, c, tokens);
      const double prefill = prefill_rate(model, c, tokens);
      std::printf("%8d  %14.1f  %14.1f\n", t, decode, prefill);
    }
    // The CPU backend keeps each matrix a second time, transposed into the panels its products
    // read (Backend::hold_matrix): every weight but the norms'.
    const double matrices = params - (2.0 * c.num_hidden_layers + 1) * c.hidden_size;
    char dir_template[] = "/tmp/pinmark-cpu-bench-XXXXXX";
    if (!mkdtemp(dir_template)) throw std::runtime_error("cannot make a directory in /tmp");
    const std::string dir = dir_template;
    Memory in_memory, mapped;
    try {
      write_f32_checkpoint(dir, weights);
      in_memory = measure_memory(model_name, tokens, "synthetic");
      mapped = measure_memory(model_name, tokens, dir);
    } catch (...) {
      std::filesystem::remove_all(dir);
      throw;
    }
    std::filesystem::remove_all(dir);
    std::printf("\nmemory of the fp32 model after decoding %d tokens on 1 thread, each way in a "
                "process of its own (MiB; file-backed: pages of the checkpoint's mapping, clean, "
                "which the kernel may drop and read again)\n",
                tokens);
    // No speed here: both decode on the same panels (the products never read the weights
    // themselves), and a process's speed moved with where its panels happened to land.
    std::printf("%-52s %8s %10s %12s\n", "weights", "peak", "anonymous", "file-backed");
    std::printf("%-52s %8.0f %10.0f %12.0f\n", "synthetic, fp64 in memory (as a synthetic case)",
                in_memory.peak, in_memory.anonymous, in_memory.file);
    std::printf("%-52s %8.0f %10.0f %12.0f\n", "F32 checkpoint, read in place (mapped)",
                mapped.peak, mapped.anonymous, mapped.file);
    std::printf("what the model needs: the fp32 weights %.0f MiB (in memory: fp64 %.0f MiB "
                "beside them), their matrices' panels %.0f MiB, KV cache %.1f MiB\n",
                params * 4 / (1 << 20), params * 8 / (1 << 20), matrices * 4 / (1 << 20), kv_mib);
    // The other CPU targets on the same kernels: the fp64 oracle, and bf16 and fp16 emulated
    // (fp32 arithmetic, every value an op stores rounded to the storage type).
    std::printf("\nthe other CPU targets, same model and kernels (tok/s):\n");
    std::printf("%-34s %8s  %14s  %14s\n", "target", "threads", "decode tok/s", "prefill tok/s");
    {
      auto backend64 = pinmark::make_cpu_backend<double>();
      pinmark::Model<double> model64(c, weights, *backend64);
      for (int t : threads) {
        omp_set_num_threads(t);
        std::printf("%-34s %8d  %14.1f  %14.1f\n", "cpu fp64 (the oracle)", t,
                    decode_rate(model64, c, tokens), prefill_rate(model64, c, tokens));
      }
    }
    for (const pinmark::DType storage : {pinmark::DType::bf16, pinmark::DType::f16}) {
      auto rounding = pinmark::make_rounding_backend(pinmark::make_cpu_backend<float>(), storage);
      pinmark::Model<float> emulated(c, pinmark::rounded_weights(weights, storage), *rounding);
      const std::string label = "cpu " + pinmark::dtype_name(storage) + " (emulated)";
      for (int t : threads) {
        omp_set_num_threads(t);
        std::printf("%-34s %8d  %14.1f  %14.1f\n", label.c_str(), t,
                    decode_rate(emulated, c, tokens), prefill_rate(emulated, c, tokens));
      }
    }
    if (gemm) gemm_table(threads);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpu_bench: %s\n", e.what());
    return 2;
  }
}
