// bench/llama_bench's device-resident bf16 forward as a pinmark engine (docs/engines.md), so
// that the fast path the bench times is pinned by cases like any other target: it reads a
// request's config.json and Hugging Face weights, runs each sequence's prefill and forced
// decode through bench/device_llama.cuh's DeviceModel, and writes the logits. It runs the
// Llama family as the bench builds it (head_dim 64, tied embeddings, default RoPE, no biases,
// no window) in bf16; anything else is answered `unsupported`, naming what.
//
//   llama_bench_engine     pinmark's line protocol on stdin and stdout
#include <cuda_runtime.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/device_llama.cuh"
#include "driver/safetensors_writer.h"
#include "runtime/dtype.h"
#include "runtime/safetensors.h"

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  return json::parse(in);
}

// Why the bench's forward cannot run this config, or "".
std::string unsupported_config(const json& c) {
  if (c.value("model_type", "") != "llama")
    return "model_type '" + c.value("model_type", "") + "' (the bench's forward is Llama's)";
  const int hidden = c.value("hidden_size", 0), heads = c.value("num_attention_heads", 0);
  const int head_dim = c.contains("head_dim") && !c["head_dim"].is_null()
                           ? c["head_dim"].get<int>()
                           : (heads > 0 ? hidden / heads : 0);
  if (head_dim != 64) return "head_dim " + std::to_string(head_dim) + " (its kernels take 64)";
  if (!c.value("tie_word_embeddings", false))
    return "untied embeddings (its LM head is the embedding table)";
  for (const char* key : {"rope_scaling", "rope_parameters"})
    if (c.contains(key) && c[key].is_object() &&
        c[key].value("rope_type", std::string("default")) != "default")
      return std::string(key) + " of rope_type '" + c[key].value("rope_type", "") +
             "' (default RoPE only)";
  if (c.value("attention_bias", false) || c.value("mlp_bias", false)) return "biases";
  if (c.value("hidden_act", std::string("silu")) != "silu") return "hidden_act other than silu";
  if (c.contains("sliding_window") && !c["sliding_window"].is_null()) return "a sliding window";
  return "";
}

Dims dims_of(const json& c) {
  Dims d{};
  d.name = "engine";
  d.hidden = c.at("hidden_size").get<int>();
  d.layers = c.at("num_hidden_layers").get<int>();
  d.heads = c.at("num_attention_heads").get<int>();
  d.kv_heads = c.value("num_key_value_heads", d.heads);
  d.head_dim = 64;
  d.inter = c.at("intermediate_size").get<int>();
  d.vocab = c.at("vocab_size").get<int>();
  d.theta = c.value("rope_theta", 10000.0);
  if (c.contains("rope_parameters") && c["rope_parameters"].is_object())
    d.theta = c["rope_parameters"].value("rope_theta", d.theta);
  d.eps = c.value("rms_norm_eps", 1e-6);
  return d;
}

// The weights file of a request: the export's model.safetensors or the checkpoint's.
std::string weights_of(const json& request) {
  if (request.contains("weights")) return request["weights"].get<std::string>();
  const std::string file = request.at("checkpoint").get<std::string>() + "/model.safetensors";
  if (!fs::exists(file)) throw std::runtime_error("no single model.safetensors in the checkpoint");
  return file;
}

std::string device_text(std::string& device_class) {
  int device = 0, runtime = 0;
  cudaDeviceProp p{};
  CHECK(cudaGetDevice(&device));
  CHECK(cudaGetDeviceProperties(&p, device));
  CHECK(cudaRuntimeGetVersion(&runtime));
  device_class = "sm" + std::to_string(p.major) + std::to_string(p.minor);
  return std::string(p.name) + ", compute capability " + std::to_string(p.major) + "." +
         std::to_string(p.minor) + ", CUDA runtime " + std::to_string(runtime / 1000) + "." +
         std::to_string(runtime % 1000 / 10);
}

// Every sequence: the prompt in prefill_chunk pieces (or whole), then each forced token.
void run_sequences(DeviceModel& m, const json& request, cudaStream_t stream,
                   const std::string& prefix, pinmark::SafetensorsWriter& out) {
  const int vocab = m.dims().vocab;
  const int chunk_size = request.value("prefill_chunk", 0);
  for (size_t s = 0; s < request["sequences"].size(); ++s) {
    const json& seq = request["sequences"][s];
    const std::vector<int> prompt = seq.at("prompt").get<std::vector<int>>();
    const std::vector<int> forced = seq.at("forced").get<std::vector<int>>();
    std::vector<float> logits, decode;
    const int n = static_cast<int>(prompt.size());
    for (int p0 = 0; p0 < n;) {
      const int step = chunk_size > 0 ? std::min(chunk_size, n - p0) : n;
      upload_tokens(m, std::vector<int>(prompt.begin() + p0, prompt.begin() + p0 + step), stream);
      m.forward(step, p0, step);
      const std::vector<float> rows = download_logits(m, step);
      logits.insert(logits.end(), rows.begin(), rows.end());
      p0 += step;
    }
    for (size_t i = 0; i < forced.size(); ++i) {
      upload_tokens(m, {forced[i]}, stream);
      m.forward(1, n + static_cast<int>(i), 1);
      const std::vector<float> row = download_logits(m, 1);
      decode.insert(decode.end(), row.begin(), row.end());
    }
    const std::string name = prefix + "sequence." + std::to_string(s) + ".";
    out.add_f32(name + "logits", {n, vocab}, logits);
    if (!forced.empty())
      out.add_f32(name + "decode_logits", {static_cast<int64_t>(forced.size()), vocab}, decode);
  }
}

json answer(const std::string& request_path, cublasHandle_t blas, cudaStream_t stream) {
  const json request = read_json(request_path);
  const json config = read_json(request.at("config").get<std::string>());
  const std::string why = unsupported_config(config);
  json unsupported = json::object();
  for (const json& target : request["targets"]) {
    const std::string name = target["name"];
    if (!why.empty()) {
      unsupported[name] = why;
      continue;
    }
    if (target["precision"] != "bf16") {
      unsupported[name] = "precision " + target["precision"].get<std::string>() + " (bf16 only)";
      continue;
    }
    const Dims d = dims_of(config);
    int max_prompt = 1, capacity = 1;
    for (const json& seq : request["sequences"]) {
      max_prompt = std::max<int>(max_prompt, static_cast<int>(seq["prompt"].size()));
      capacity = std::max<int>(capacity,
                               static_cast<int>(seq["prompt"].size() + seq["forced"].size()));
    }
    const pinmark::SafetensorsFile weights(weights_of(request));
    // Rounded from what is stored (fp64 for synthetic weights) to bf16 as the targets' weights
    // are (runtime/weights.cpp, rounded_weights): through fp32, to nearest even.
    const WeightLoader load = [&](bf16* device, int64_t count, const std::string& tensor) {
      const pinmark::Tensor<double> t = weights.read(tensor);
      if (static_cast<int64_t>(t.data.size()) != count)
        throw std::runtime_error(tensor + " holds " + std::to_string(t.data.size()) +
                                 " values, the model needs " + std::to_string(count));
      std::vector<uint16_t> bits(t.data.size());
      for (size_t i = 0; i < bits.size(); ++i)
        bits[i] = pinmark::float_to_bf16_bits(static_cast<float>(t.data[i]));
      CHECK(cudaMemcpy(device, bits.data(), bits.size() * sizeof(uint16_t),
                       cudaMemcpyHostToDevice));
    };
    DeviceModel m(d, max_prompt, capacity, blas, stream, load);
    pinmark::SafetensorsWriter out;
    std::string device_class;
    out.set_metadata("engine", "pinmark llama_bench forward");
    out.set_metadata("device", device_text(device_class));
    out.set_metadata("device_class", device_class);
    const std::string attention =
        m.attention_cluster() > 0
            ? "split-KV attention merged in clusters of " + std::to_string(m.attention_cluster())
            : std::string("split-KV attention");
    out.set_metadata("math_mode",
                     std::string(m.tuned_products()
                                     ? "prefill: cuBLAS bf16 operands, fp32 compute (cuBLASLt "
                                       "algorithms tuned per shape, cublasGemmEx's bits), flash "
                                       "attention ("
                                     : "prefill: cuBLAS GemmEx bf16 operands, fp32 compute, "
                                       "flash attention (") +
                         flash_kernel_name(m.flash_kernel()) +
                         "); decode: fused matrix-vector kernels, fp32 sums in a fixed order, " +
                         attention + "; bf16 activations");
    run_sequences(m, request, stream, "", out);
    run_sequences(m, request, stream, "repeat.", out);
    const std::string path = target["output"].get<std::string>();
    out.write(path + ".tmp");
    fs::rename(path + ".tmp", path);
  }
  json reply = {{"done", request_path}};
  if (!unsupported.empty()) reply["unsupported"] = unsupported;
  return reply;
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::cout << json{{"unavailable", "no CUDA device"}}.dump() << "\n" << std::flush;
    return 0;
  }
  cublasHandle_t blas;
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) {
    std::cout << json{{"unavailable", "cuBLAS cannot start"}}.dump() << "\n" << std::flush;
    return 0;
  }
  cublasSetStream(blas, stream);
  void* workspace = nullptr;
  try {
    workspace = attach_blas_workspace(blas);  // as the bench's, so the same kernels run
  } catch (const std::exception& e) {
    std::cout << json{{"unavailable", std::string("cuBLAS workspace: ") + e.what()}}.dump()
              << "\n"
              << std::flush;
    return 0;
  }
  for (std::string line; std::getline(std::cin, line);) {
    json reply;
    try {
      reply = answer(json::parse(line).at("request").get<std::string>(), blas, stream);
    } catch (const std::exception& e) {
      reply = {{"error", e.what()}};
    }
    std::cout << reply.dump() << "\n" << std::flush;
  }
  cublasDestroy(blas);
  cudaFree(workspace);
  cudaStreamDestroy(stream);
  return 0;
}
