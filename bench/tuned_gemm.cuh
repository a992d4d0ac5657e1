// The forward's products y[n, m] = x[n, k] w[m, k]^T (+ y), gemm()'s contract, run by the
// fastest of the algorithms cuBLASLt's heuristic offers for the shape among those that give
// cublasGemmEx's bits, chosen by timing the first time the shape runs (the idea of PyTorch's
// TunableOp). The bits are what gemm() gives, so the numbers the goldens pin do not depend on
// the choice: a candidate must reproduce gemm()'s output bit for bit on random operands of the
// shape, with beta 0 and with beta 1, and must not split the sum over k (split-K changes the
// order of the fp32 additions). Why: cublasGemmEx's pick runs the 1B prefill's q/k/v and o
// products at under 60% of the 8192^3 rate on an H200, where another algorithm with the same
// bits takes 10 to 16% less time (docs/performance.md, "Prefill products, tuned").
// Included by device_llama.cuh, inside its namespace, after gemm(), fill() and Timer; its headers
// are device_llama.cuh's.
#pragma once

#define PINMARK_CHECK_LT(call)                                                             \
  do {                                                                                     \
    const cublasStatus_t status_ = (call);                                                 \
    if (status_ != CUBLAS_STATUS_SUCCESS)                                                  \
      throw std::runtime_error(std::string(#call) + ": " + cublasGetStatusString(status_)); \
  } while (0)

// One shape of gemm()'s product described for cublasLtMatmul: A is w (k x m column-major,
// transposed), B is x (k x n column-major), C = D is y (m x n column-major); fp32 compute and
// scale, bf16 operands and output, as cublasGemmEx runs it.
class LtProduct {
 public:
  LtProduct(int n, int k, int m) {
    PINMARK_CHECK_LT(cublasLtMatmulDescCreate(&desc_, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t t = CUBLAS_OP_T, none = CUBLAS_OP_N;
    PINMARK_CHECK_LT(
        cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t));
    PINMARK_CHECK_LT(
        cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof none));
    PINMARK_CHECK_LT(cublasLtMatrixLayoutCreate(&a_, CUDA_R_16BF, k, m, k));
    PINMARK_CHECK_LT(cublasLtMatrixLayoutCreate(&b_, CUDA_R_16BF, k, n, k));
    PINMARK_CHECK_LT(cublasLtMatrixLayoutCreate(&c_, CUDA_R_16BF, m, n, m));
  }
  ~LtProduct() {
    cublasLtMatrixLayoutDestroy(c_);
    cublasLtMatrixLayoutDestroy(b_);
    cublasLtMatrixLayoutDestroy(a_);
    cublasLtMatmulDescDestroy(desc_);
  }
  LtProduct(const LtProduct&) = delete;
  LtProduct& operator=(const LtProduct&) = delete;

  // Up to `count` algorithms the heuristic offers within `workspace_bytes`, its best first.
  std::vector<cublasLtMatmulAlgo_t> algorithms(cublasLtHandle_t lt, int count,
                                               size_t workspace_bytes) const {
    cublasLtMatmulPreference_t pref;
    PINMARK_CHECK_LT(cublasLtMatmulPreferenceCreate(&pref));
    PINMARK_CHECK_LT(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes, sizeof workspace_bytes));
    std::vector<cublasLtMatmulHeuristicResult_t> found(count);
    int returned = 0;
    const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
        lt, desc_, a_, b_, c_, c_, pref, count, found.data(), &returned);
    cublasLtMatmulPreferenceDestroy(pref);
    std::vector<cublasLtMatmulAlgo_t> algos;
    if (status != CUBLAS_STATUS_SUCCESS) return algos;  // none offered: gemm() it is
    for (int i = 0; i < returned; ++i)
      if (found[i].state == CUBLAS_STATUS_SUCCESS) algos.push_back(found[i].algo);
    return algos;
  }
  void run(cublasLtHandle_t lt, const cublasLtMatmulAlgo_t& algo, const bf16* x, const bf16* w,
           bf16* y, float beta, void* workspace, size_t workspace_bytes,
           cudaStream_t stream) const {
    const float one = 1.0f;
    PINMARK_CHECK_LT(cublasLtMatmul(lt, desc_, &one, w, a_, x, b_, &beta, y, c_, y, c_, &algo,
                                    workspace, workspace_bytes, stream));
  }

 private:
  cublasLtMatmulDesc_t desc_;
  cublasLtMatrixLayout_t a_, b_, c_;
};

// An algorithm's tile (CUBLASLT_ALGO_CONFIG_TILE_ID), split-K count and stages, as the
// enumerations of cublasLt.h number them.
inline std::string describe_algo(const cublasLtMatmulAlgo_t& algo) {
  int tile = 0, splits = 1, stages = 0;
  size_t got = 0;
  cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile,
                                       &got);
  cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits,
                                       sizeof splits, &got);
  cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages,
                                       sizeof stages, &got);
  return "tile " + std::to_string(tile) + ", split " + std::to_string(splits) + ", stages " +
         std::to_string(stages);
}

class TunedGemm {
 public:
  // What was chosen for one shape: gemm()'s time and the chosen algorithm's (ms, median of 5
  // on the tuning operands), how many candidates gave gemm()'s bits of how many were offered.
  // lt false: none was faster, or none gave the same bits, and gemm() runs the shape.
  struct Choice {
    int n, k, m;
    double gemm_ms, chosen_ms;
    int same, offered;
    bool lt;
    cublasLtMatmulAlgo_t algo;
    std::string name;
    std::shared_ptr<const LtProduct> product;  // the shape described for cublasLtMatmul
  };

  TunedGemm(cublasHandle_t blas, cudaStream_t stream) : blas_(blas), stream_(stream) {
    PINMARK_CHECK_LT(cublasLtCreate(&lt_));
    CHECK(cudaMalloc(&workspace_, kBlasWorkspaceBytes));
  }
  ~TunedGemm() {
    cudaFree(workspace_);
    cublasLtDestroy(lt_);
  }
  TunedGemm(const TunedGemm&) = delete;
  TunedGemm& operator=(const TunedGemm&) = delete;

  // y[n, m] = x[n, k] w[m, k]^T (+ y when beta is 1) on the stream, gemm()'s bits. A shape met
  // for the first time is tuned first (it synchronises the stream and allocates, so a shape
  // first met while a graph is captured runs gemm() instead, untuned). Off: gemm() always.
  void run(const bf16* x, const bf16* w, int n, int k, int m, bf16* y, float beta = 0.0f) {
    const Choice* c = on_ ? choice(n, k, m) : nullptr;
    if (c == nullptr || !c->lt) {
      gemm(blas_, x, w, n, k, m, y, beta);
      return;
    }
    c->product->run(lt_, c->algo, x, w, y, beta, workspace_, kBlasWorkspaceBytes, stream_);
  }
  bool on() const { return on_; }
  void set_on(bool on) { on_ = on; }
  // The shapes tuned so far, in the order first met.
  std::vector<Choice> choices() const {
    std::vector<Choice> out;
    for (const Key& k : order_) out.push_back(choices_.at(k));
    return out;
  }

 private:
  using Key = std::tuple<int, int, int>;
  static Key key(int n, int k, int m) { return {n, k, m}; }

  const Choice* choice(int n, int k, int m) {
    const auto found = choices_.find(key(n, k, m));
    if (found != choices_.end()) return &found->second;
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    CHECK(cudaStreamIsCapturing(stream_, &capture));
    if (capture != cudaStreamCaptureStatusNone) return nullptr;
    tune(n, k, m);
    return &choices_.at(key(n, k, m));
  }

  void tune(int n, int k, int m) {
    const int64_t xs = int64_t{n} * k, ws = int64_t{m} * k, ys = int64_t{n} * m;
    bf16 *x = nullptr, *w = nullptr, *c = nullptr, *want0 = nullptr, *want1 = nullptr,
         *y = nullptr;
    CHECK(cudaMalloc(&x, xs * sizeof(bf16)));
    CHECK(cudaMalloc(&w, ws * sizeof(bf16)));
    for (bf16** p : {&c, &want0, &want1, &y}) CHECK(cudaMalloc(p, ys * sizeof(bf16)));
    fill(stream_, x, xs, "bench.tune.x", 1.0);
    fill(stream_, w, ws, "bench.tune.w", 0.05);
    fill(stream_, c, ys, "bench.tune.c", 1.0);
    const size_t y_bytes = static_cast<size_t>(ys) * sizeof(bf16);
    gemm(blas_, x, w, n, k, m, want0);
    CHECK(cudaMemcpyAsync(want1, c, y_bytes, cudaMemcpyDeviceToDevice, stream_));
    gemm(blas_, x, w, n, k, m, want1, 1.0f);
    auto same_as = [&](const bf16* want) {
      std::vector<uint16_t> a(ys), b(ys);
      CHECK(cudaMemcpyAsync(a.data(), y, y_bytes, cudaMemcpyDeviceToHost, stream_));
      CHECK(cudaMemcpyAsync(b.data(), want, y_bytes, cudaMemcpyDeviceToHost, stream_));
      CHECK(cudaStreamSynchronize(stream_));
      return std::equal(a.begin(), a.end(), b.begin());
    };

    Choice choice{n, k, m, 0.0, 0.0, 0, 0, false, {}, "cublasGemmEx", nullptr};
    const Timer timer{stream_};
    choice.gemm_ms = timer.median_ms(2, 5, [&] { gemm(blas_, x, w, n, k, m, y); });
    choice.chosen_ms = choice.gemm_ms;
    auto product = std::make_shared<const LtProduct>(n, k, m);
    const std::vector<cublasLtMatmulAlgo_t> algos =
        product->algorithms(lt_, 16, kBlasWorkspaceBytes);
    choice.offered = static_cast<int>(algos.size());
    for (const cublasLtMatmulAlgo_t& a : algos) {
      int splits = 1;
      size_t got = 0;
      cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits,
                                           sizeof splits, &got);
      if (splits > 1) continue;
      auto launch = [&](float beta) {
        product->run(lt_, a, x, w, y, beta, workspace_, kBlasWorkspaceBytes, stream_);
      };
      launch(0.0f);
      if (!same_as(want0)) continue;
      CHECK(cudaMemcpyAsync(y, c, y_bytes, cudaMemcpyDeviceToDevice, stream_));
      launch(1.0f);
      if (!same_as(want1)) continue;
      ++choice.same;
      const double ms = timer.median_ms(2, 5, [&] { launch(0.0f); });
      if (ms < choice.chosen_ms) {
        choice.chosen_ms = ms;
        choice.lt = true;
        choice.algo = a;
        choice.name = describe_algo(a);
      }
    }
    for (bf16* p : {x, w, c, want0, want1, y}) CHECK(cudaFree(p));
    choice.product = std::move(product);
    choices_[key(n, k, m)] = choice;
    order_.push_back(key(n, k, m));
  }

  cublasHandle_t blas_;
  cudaStream_t stream_;
  cublasLtHandle_t lt_;
  void* workspace_ = nullptr;
  bool on_ = true;
  std::map<Key, Choice> choices_;
  std::vector<Key> order_;
};
