// Gemma 3n's parts of the forward pass (transformers 5.17's Gemma3nTextModel): AltUp's streams,
// LAuReL, and the per-layer inputs. Like model.cpp, bookkeeping only: every number comes from
// the backend, with the rounding points of the PyTorch code (each op's output stored, the
// scalars transformers casts to the model's dtype cast with Backend::scale).
#include <cmath>

#include "runtime/model.h"

namespace pinmark {

namespace {

// AltUp's streams are rescaled to a root mean square of at least sqrt(1e-5) (epsilon_tensor).
constexpr double kStreamFloor = 1e-5;

}  // namespace

template <class T>
void Model<T>::load_gemma3n(const WeightSource& weights) {
  const ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size, streams = c.altup_num_inputs, rank = c.laurel_rank;
  const int64_t per_layer = c.hidden_size_per_layer_input;
  const int64_t all_layers = int64_t{c.num_hidden_layers} * per_layer;
  embed_per_layer_ = load_as<T>(weights, "model.embed_tokens_per_layer.weight",
                             {c.vocab_size_per_layer_input, all_layers});
  per_layer_model_projection_ =
      load_as<T>(weights, "model.per_layer_model_projection.weight", {all_layers, hidden});
  per_layer_projection_norm_ =
      load_as<T>(weights, "model.per_layer_projection_norm.weight", {per_layer});
  for (int64_t i = 0; i + 1 < streams; ++i) {
    const std::string s = std::to_string(i);
    altup_projections_.push_back(
        load_as<T>(weights, "model.altup_projections." + s + ".weight", {hidden, hidden}));
    altup_unembed_projections_.push_back(
        load_as<T>(weights, "model.altup_unembed_projections." + s + ".weight", {hidden, hidden}));
  }
  ones_ = std::vector<T>(c.head_dim, T(1));
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer& L = layers_[l];
    L.altup_scale = load_as<T>(weights, p + "altup.correct_output_scale", {hidden});
    L.altup_correction = load_as<T>(weights, p + "altup.correction_coefs.weight", {streams, streams});
    L.altup_prediction =
        load_as<T>(weights, p + "altup.prediction_coefs.weight", {streams * streams, streams});
    L.altup_router = load_as<T>(weights, p + "altup.modality_router.weight", {streams, hidden});
    L.altup_router_norm = load_as<T>(weights, p + "altup.router_norm.weight", {hidden});
    L.laurel_left = load_as<T>(weights, p + "laurel.linear_left.weight", {rank, hidden});
    L.laurel_right = load_as<T>(weights, p + "laurel.linear_right.weight", {hidden, rank});
    L.laurel_norm = load_as<T>(weights, p + "laurel.post_laurel_norm.weight", {hidden});
    L.per_layer_gate = load_as<T>(weights, p + "per_layer_input_gate.weight", {per_layer, hidden});
    L.per_layer_projection =
        load_as<T>(weights, p + "per_layer_projection.weight", {hidden, per_layer});
    L.per_layer_norm = load_as<T>(weights, p + "post_per_layer_input_norm.weight", {hidden});
  }
}

// Gemma3nTextModel.project_per_layer_inputs: (norm(x W * hidden^-0.5) + E_pl[token]) * 2^-0.5,
// with E_pl the per-layer embedding scaled by sqrt(P), each layer's P values normalised apart.
template <class T>
std::vector<T> Model<T>::per_layer_inputs(const std::vector<int>& tokens, const T* x, int n,
                                          const TapFn<T>& tap) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size, P = c.hidden_size_per_layer_input;
  const int width = c.num_hidden_layers * P;
  const int64_t size = int64_t{n} * width;
  std::vector<T> projected(size), normed(size), embedded(size);
  linear(x, per_layer_model_projection_, {}, n, hidden, width, projected.data());
  backend_.scale(projected.data(), size, std::pow(static_cast<double>(hidden), -0.5));
  backend_.rmsnorm(projected.data(), per_layer_projection_norm_.data(), n * c.num_hidden_layers, P,
                   c.rms_norm_eps, normed.data());
  backend_.embed(embed_per_layer_.data(), tokens.data(), n, width, embedded.data());
  backend_.scale(embedded.data(), size, std::sqrt(static_cast<double>(P)));
  backend_.add(normed.data(), embedded.data(), size);
  backend_.scale(normed.data(), size, 1.0 / std::sqrt(2.0));
  if (tap) tap("per_layer_inputs", {n, c.num_hidden_layers, P}, normed.data());
  return normed;
}

template <class T>
std::vector<T> Model<T>::expand_streams(const T* x, int n, const TapFn<T>& tap) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size;
  const int64_t nh = int64_t{n} * hidden;
  std::vector<T> streams(c.altup_num_inputs * nh), projected(nh);
  std::copy(x, x + nh, streams.begin());
  for (int i = 1; i < c.altup_num_inputs; ++i) {
    linear(x, altup_projections_[i - 1], {}, n, hidden, hidden, projected.data());
    backend_.rescale_rms(projected.data(), x, n, hidden, kStreamFloor, streams.data() + i * nh);
  }
  if (tap) tap("altup_streams", {c.altup_num_inputs, n, hidden}, streams.data());
  return streams;
}

template <class T>
void Model<T>::merge_streams(const std::vector<T>& streams, int n, const TapFn<T>& tap, T* x) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size, N = c.altup_num_inputs;
  const int64_t nh = int64_t{n} * hidden;
  std::vector<T> unembedded(N * nh), projected(nh);
  std::copy(streams.begin(), streams.begin() + nh, unembedded.begin());
  for (int i = 1; i < N; ++i) {
    linear(streams.data() + i * nh, altup_unembed_projections_[i - 1], {}, n, hidden, hidden,
           projected.data());
    backend_.rescale_rms(projected.data(), streams.data(), n, hidden, kStreamFloor,
                         unembedded.data() + i * nh);
  }
  // torch.mean over the streams: their sum times 1 / N, rounded once.
  const std::vector<T> mean(int64_t{n} * N, static_cast<T>(1.0 / N));
  backend_.mix_streams(unembedded.data(), mean.data(), n, N, 1, hidden, x);
  if (tap) tap("altup_merged", {n, hidden}, x);
}

template <class T>
std::vector<T> Model<T>::altup_modalities(const Layer& L, const T* x, int n) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size, N = c.altup_num_inputs;
  std::vector<T> normed(int64_t{n} * hidden), modalities(int64_t{n} * N);
  backend_.rmsnorm(x, L.altup_router_norm.data(), n, hidden, c.rms_norm_eps, normed.data());
  backend_.scale(normed.data(), static_cast<int64_t>(normed.size()), 1.0 / hidden);
  linear(normed.data(), L.altup_router, {}, n, hidden, N, modalities.data());
  backend_.softcap(modalities.data(), static_cast<int64_t>(modalities.size()), 1.0);  // tanh
  return modalities;
}

// Gemma3nTextAltUp.predict: stream j becomes x_j + sum_i C[j, i] x_i, with C [N, N] per token
// from prediction_coefs(modalities of the active stream).
template <class T>
std::vector<T> Model<T>::altup_predict(const Layer& L, const std::vector<T>& streams, int n) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size, N = c.altup_num_inputs;
  const int64_t nh = int64_t{n} * hidden;
  const std::vector<T> modalities =
      altup_modalities(L, streams.data() + c.altup_active_idx * nh, n);
  std::vector<T> coefs(int64_t{n} * N * N), predictions(N * nh);
  linear(modalities.data(), L.altup_prediction, {}, n, N, N * N, coefs.data());
  backend_.mix_streams(streams.data(), coefs.data(), n, N, N, hidden, predictions.data());
  backend_.add(predictions.data(), streams.data(), N * nh);
  return predictions;
}

template <class T>
std::vector<T> Model<T>::laurel(const Layer& L, const T* normed, int n) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size, rank = c.laurel_rank;
  std::vector<T> low(int64_t{n} * rank), high(int64_t{n} * hidden), out(int64_t{n} * hidden);
  linear(normed, L.laurel_left, {}, n, hidden, rank, low.data());
  linear(low.data(), L.laurel_right, {}, n, rank, hidden, high.data());
  backend_.rmsnorm(high.data(), L.laurel_norm.data(), n, hidden, c.rms_norm_eps, out.data());
  backend_.add(out.data(), normed, static_cast<int64_t>(out.size()));
  return out;
}

// Gemma3nTextAltUp.correct, then Gemma3nTextDecoderLayer's per-layer input:
//   stream k = prediction_k + (activated - prediction_active) * (correction_coefs(m)_k + 1),
//   g = norm(projection(act(gate(stream_active * correct_output_scale)) * per_layer_input)),
//   streams 1 .. N - 1 += g.
template <class T>
std::vector<T> Model<T>::altup_correct(const Layer& L, int layer, const std::vector<T>& predictions,
                                       const T* activated, const std::vector<T>& per_layer, int n) {
  const ModelConfig& c = config_;
  const int hidden = c.hidden_size, N = c.altup_num_inputs, P = c.hidden_size_per_layer_input;
  const int64_t nh = int64_t{n} * hidden;
  const T* active = predictions.data() + c.altup_active_idx * nh;

  const std::vector<T> modalities = altup_modalities(L, activated, n);
  std::vector<T> coefs(int64_t{n} * N);
  linear(modalities.data(), L.altup_correction, {}, n, N, N, coefs.data());
  const std::vector<T> ones(coefs.size(), T(1));
  backend_.add(coefs.data(), ones.data(), static_cast<int64_t>(coefs.size()));

  // The innovation activated - active, as a mix of the two with coefficients 1 and -1 (exact).
  std::vector<T> pair(2 * nh), innovation(nh);
  std::copy(activated, activated + nh, pair.begin());
  std::copy(active, active + nh, pair.begin() + nh);
  std::vector<T> difference(int64_t{n} * 2);
  for (int t = 0; t < n; ++t) {
    difference[2 * t] = T(1);
    difference[2 * t + 1] = T(-1);
  }
  backend_.mix_streams(pair.data(), difference.data(), n, 2, 1, hidden, innovation.data());

  std::vector<T> streams(N * nh);
  backend_.mix_streams(innovation.data(), coefs.data(), n, 1, N, hidden, streams.data());
  backend_.add(streams.data(), predictions.data(), N * nh);

  std::vector<T> first(nh), gate(int64_t{n} * P), gated(int64_t{n} * P), input(int64_t{n} * P);
  const T* corrected = streams.data() + c.altup_active_idx * nh;
  if (c.altup_correct_scale)
    backend_.scale_columns(corrected, L.altup_scale.data(), n, hidden, first.data());
  else
    std::copy(corrected, corrected + nh, first.begin());
  linear(first.data(), L.per_layer_gate, {}, n, hidden, P, gate.data());
  const int64_t row = int64_t{c.num_hidden_layers} * P;
  for (int t = 0; t < n; ++t)
    std::copy(per_layer.begin() + t * row + int64_t{layer} * P,
              per_layer.begin() + t * row + int64_t{layer + 1} * P, input.begin() + int64_t{t} * P);
  activation(gate.data(), input.data(), static_cast<int64_t>(gate.size()), gated.data());
  std::vector<T> projected(nh), added(nh);
  linear(gated.data(), L.per_layer_projection, {}, n, P, hidden, projected.data());
  backend_.rmsnorm(projected.data(), L.per_layer_norm.data(), n, hidden, c.rms_norm_eps,
                   added.data());
  for (int i = 1; i < N; ++i) backend_.add(streams.data() + i * nh, added.data(), nh);
  return streams;
}

#define PINMARK_GEMMA3N(T)                                                                   \
  template void Model<T>::load_gemma3n(const WeightSource&);                                      \
  template std::vector<T> Model<T>::per_layer_inputs(const std::vector<int>&, const T*, int, \
                                                     const TapFn<T>&);                       \
  template std::vector<T> Model<T>::expand_streams(const T*, int, const TapFn<T>&);          \
  template void Model<T>::merge_streams(const std::vector<T>&, int, const TapFn<T>&, T*);    \
  template std::vector<T> Model<T>::altup_modalities(const Layer&, const T*, int);           \
  template std::vector<T> Model<T>::altup_predict(const Layer&, const std::vector<T>&, int); \
  template std::vector<T> Model<T>::laurel(const Layer&, const T*, int);                     \
  template std::vector<T> Model<T>::altup_correct(const Layer&, int, const std::vector<T>&,  \
                                                  const T*, const std::vector<T>&, int);
PINMARK_GEMMA3N(double)
PINMARK_GEMMA3N(float)
#undef PINMARK_GEMMA3N

}  // namespace pinmark
