#include "driver/hf_config.h"

#include <algorithm>
#include <climits>
#include <functional>
#include <map>
#include <string>

namespace pinmark {
namespace {

using nlohmann::json;

// Far past any released model (hundreds of layers); the budget refuses most counts below it.
constexpr int kMaxLayers = 1 << 20;

// Reads one typed config value, or records why it cannot.
struct Reader {
  const JsonBlock& block;
  std::vector<CaseProblem>& problems;

  // Any int: sizes are checked for sign by validate(), which names the key.
  bool integer(const std::string& key, const json& value, int& out) {
    const std::optional<int> v = block.integer(key, value, INT_MIN, INT_MAX, problems);
    if (v) out = *v;
    return v.has_value();
  }
  bool number(const std::string& key, const json& value, double& out) {
    if (!value.is_number()) {
      problems.push_back(block.problem_at(key, key + " must be a number, got " + json_text(value)));
      return false;
    }
    out = value.get<double>();
    return true;
  }
  bool boolean(const std::string& key, const json& value, bool& out) {
    if (!value.is_boolean()) {
      problems.push_back(block.problem_at(key, key + " must be true or false, got " + json_text(value)));
      return false;
    }
    out = value.get<bool>();
    return true;
  }
  // A key pinmark accepts only at the one value it implements.
  void only(const std::string& key, const json& value, const json& supported) {
    if (value != supported)
      problems.push_back(block.problem_at(key, key + " " + json_text(value) +
                                                   " is not supported (pinmark implements " +
                                                   json_text(supported) + "); set it to " +
                                                   json_text(supported) + " or leave it out"));
  }
};

using KeyHandler = std::function<void(Reader&, const std::string&, const json&, ModelConfig&)>;
using KeyTable = std::map<std::string, KeyHandler>;

// The architecture each model_type's config.json names: transformers builds the model from
// model_type, and a config whose architectures disagrees was written for another model.
const std::map<std::string, std::string>& architecture_of() {
  static const std::map<std::string, std::string> names = {
      {"llama", "LlamaForCausalLM"},   {"mistral", "MistralForCausalLM"},
      {"qwen2", "Qwen2ForCausalLM"},   {"qwen3", "Qwen3ForCausalLM"},
      {"gemma", "GemmaForCausalLM"},   {"gemma2", "Gemma2ForCausalLM"},
      {"gpt2", "GPT2LMHeadModel"},     {"mixtral", "MixtralForCausalLM"},
      {"qwen3_moe", "Qwen3MoeForCausalLM"}, {"olmo2", "Olmo2ForCausalLM"},
      {"phi3", "Phi3ForCausalLM"},     {"gemma3_text", "Gemma3ForCausalLM"},
      {"gpt_oss", "GptOssForCausalLM"}, {"deepseek_v3", "DeepseekV3ForCausalLM"},
      {"deepseek_v32", "DeepseekV32ForCausalLM"}, {"qwen3_next", "Qwen3NextForCausalLM"},
      {"gemma3n_text", "Gemma3nForCausalLM"}, {"deepseek_v4", "DeepseekV4ForCausalLM"}};
  return names;
}

// The family's base model class (no head), which a checkpoint saved from the base model names;
// AutoModelForCausalLM builds the same layers from it.
const std::map<std::string, std::string>& base_architecture_of() {
  static const std::map<std::string, std::string> names = {
      {"llama", "LlamaModel"},         {"mistral", "MistralModel"},
      {"qwen2", "Qwen2Model"},         {"qwen3", "Qwen3Model"},
      {"gemma", "GemmaModel"},         {"gemma2", "Gemma2Model"},
      {"gpt2", "GPT2Model"},           {"mixtral", "MixtralModel"},
      {"qwen3_moe", "Qwen3MoeModel"},  {"olmo2", "Olmo2Model"},
      {"phi3", "Phi3Model"},           {"gemma3_text", "Gemma3TextModel"},
      {"gpt_oss", "GptOssModel"},      {"deepseek_v3", "DeepseekV3Model"},
      {"deepseek_v32", "DeepseekV32Model"}, {"qwen3_next", "Qwen3NextModel"},
      {"gemma3n_text", "Gemma3nTextModel"}, {"deepseek_v4", "DeepseekV4Model"}};
  return names;
}

KeyHandler integer_key(int ModelConfig::*field) {
  return [field](Reader& r, const std::string& k, const json& v, ModelConfig& c) {
    r.integer(k, v, c.*field);
  };
}
KeyHandler number_key(double ModelConfig::*field) {
  return [field](Reader& r, const std::string& k, const json& v, ModelConfig& c) {
    r.number(k, v, c.*field);
  };
}
KeyHandler boolean_key(bool ModelConfig::*field) {
  return [field](Reader& r, const std::string& k, const json& v, ModelConfig& c) {
    r.boolean(k, v, c.*field);
  };
}
// A number where null means "none" (stored as 0).
KeyHandler optional_number_key(double ModelConfig::*field) {
  return [field](Reader& r, const std::string& k, const json& v, ModelConfig& c) {
    if (v.is_null())
      c.*field = 0;
    else if (r.number(k, v, c.*field) && !(c.*field > 0))
      r.problems.push_back(r.block.problem_at(k, k + " must be positive or null, got " + json_text(v)));
  };
}
// A key whose value the model does not use (another key decides), still checked to be an
// integer or null so that a malformed config is refused as transformers would refuse it.
KeyHandler unused_integer_key() {
  return [](Reader& r, const std::string& k, const json& v, ModelConfig&) {
    int ignored = 0;
    if (!v.is_null()) r.integer(k, v, ignored);
  };
}

KeyHandler only_key(json supported) {
  return [supported](Reader& r, const std::string& k, const json& v, ModelConfig&) {
    r.only(k, v, supported);
  };
}

// sliding_window: a positive integer, or null for none.
void read_sliding_window(Reader& r, const std::string& k, const json& v, ModelConfig& c) {
  if (v.is_null()) {
    c.sliding_window = 0;
  } else if (r.integer(k, v, c.sliding_window) && c.sliding_window <= 0) {
    r.problems.push_back(r.block.problem_at(k, k + " must be positive or null, got " + json_text(v)));
  }
}

void read_layer_types(Reader& r, const std::string& k, const json& v, ModelConfig& c) {
  if (v.is_null()) {
    c.layer_types.clear();
    return;
  }
  if (!v.is_array()) {
    r.problems.push_back(r.block.problem_at(k, k + " must be a list of strings, got " + json_text(v)));
    return;
  }
  c.layer_types.clear();
  for (const json& t : v) {
    if (!t.is_string()) {
      r.problems.push_back(r.block.problem_at(k, k + " must be a list of strings, got " + json_text(v)));
      return;
    }
    c.layer_types.push_back(t.get<std::string>());
  }
}

// DeepSeek-V3.2's and V4's mlp_layer_types: a list of strings, as layer_types is read.
void read_mlp_layer_types(Reader& r, const std::string& k, const json& v, ModelConfig& c) {
  ModelConfig read;
  read_layer_types(r, k, v, read);
  c.mlp_layer_types = read.layer_types;
}

// Gemma 3's rope: either one table (4.x rope_scaling, or a flat rope_parameters), which is the
// full layers', or transformers 5's rope_parameters by layer type: {"full_attention": {...},
// "sliding_attention": {...}}. The sliding layers' entry must be plain RoPE (every release's
// is): its rope_theta is their base.
void read_rope(Reader& r, const std::string& k, const json& v, ModelConfig& c);

// The plain RoPE of a family's sliding layers (Gemma 3's sliding_attention entry, DeepSeek-V4's
// main kind), `what` naming the entry and `layers` the family's sliding layers in messages: an
// object of rope type default, whose rope_theta is their base.
void read_sliding_rope(Reader& r, const std::string& k, const std::string& what, const json& params,
                       const std::string& layers, ModelConfig& c) {
  if (!params.is_object()) {
    r.problems.push_back(r.block.problem_at(k, what + " must be an object, got " + json_text(params)));
    return;
  }
  std::string type = "default";
  for (const char* name : {"type", "rope_type"})
    if (params.contains(name) && params[name].is_string()) type = params[name].get<std::string>();
  if (type != "default") {
    r.problems.push_back(r.block.problem_at(
        k, what + " rope type \"" + type + "\" is not supported (pinmark implements "
               "\"default\" on " + layers + "); set it to \"default\""));
    return;
  }
  if (params.contains("rope_theta"))
    r.number(what + ".rope_theta", params["rope_theta"], c.rope_local_base_freq);
}

void read_gemma3_rope(Reader& r, const std::string& k, const json& v, ModelConfig& c) {
  if (!v.is_object() || !(v.contains("full_attention") || v.contains("sliding_attention"))) {
    read_rope(r, k, v, c);
    return;
  }
  for (const auto& [layer_type, params] : v.items()) {
    const std::string what = k + "." + layer_type;
    if (layer_type == "full_attention") {
      read_rope(r, k, params, c);
    } else if (layer_type == "sliding_attention") {
      if (!params.is_null()) read_sliding_rope(r, k, what, params, "Gemma 3's sliding layers", c);
    } else {
      r.problems.push_back(r.block.problem_at(
          k, what + " is not a layer type (Gemma 3 has full_attention and sliding_attention)"));
    }
  }
}

// DeepSeek-V4's rope, as DeepseekV4Config.__post_init__ resolves it: transformers 5's
// rope_parameters by rope kind, {"main": {...}, "compress": {...}}, the sliding layers' plain
// RoPE and the compressed layers' (which may be scaled); or one flat table (rope_scaling, or a
// flat rope_parameters), which is the compressed layers' scaling: its base is then
// compress_rope_theta whatever the table says, and a yarn table without attention_factor gets
// 1.0 (the V4 reference does not scale cos and sin).
//
// Nested, each kind's rotary width is head_dim times its own partial_rotary_factor (1 when
// absent: DeepseekV4RotaryEmbedding reads it from the kind's entry, not from the config's top
// level); pinmark implements one width for both kinds.
void read_deepseek_v4_rope(Reader& r, const std::string& k, const json& v, ModelConfig& c) {
  // DeepseekV4Config takes the by-kind form only when both kinds are objects; with one of them
  // it would drop both without a word, so pinmark refuses that.
  const bool has_main = v.is_object() && v.contains("main") && v["main"].is_object();
  const bool has_compress = v.is_object() && v.contains("compress") && v["compress"].is_object();
  if (v.is_object() && (v.contains("main") || v.contains("compress")) &&
      !(has_main && has_compress)) {
    r.problems.push_back(r.block.problem_at(
        k, k + " gives " + (v.contains("main") ? "main" : "compress") + " but not " +
               (v.contains("main") ? "compress" : "main") +
               " as an object: DeepseekV4Config reads the by-kind form only with both (and would "
               "drop this one silently); give both, or one flat table for the compressed layers"));
    return;
  }
  if (has_main && has_compress) {
    double main_factor = 1.0, compress_factor = 1.0;
    for (const auto& [kind, params] : v.items()) {
      const std::string what = k + "." + kind;
      if (kind == "compress") {
        c.partial_rotary_factor = 1.0;
        read_rope(r, k, params, c);
        compress_factor = c.partial_rotary_factor;
      } else if (kind == "main") {
        if (params.is_object() && params.contains("partial_rotary_factor"))
          r.number(what + ".partial_rotary_factor", params["partial_rotary_factor"], main_factor);
        // Plain RoPE reads its base and width; another key is read for nothing, unless it is a
        // letter or two from one of those (a misspelling whose value would be lost).
        if (params.is_object())
          for (const auto& [key, value] : params.items()) {
            (void)value;
            if (key == "rope_type" || key == "type" || key == "rope_theta" ||
                key == "partial_rotary_factor")
              continue;
            if (auto guess = did_you_mean(key, {"rope_theta", "partial_rotary_factor", "rope_type"}))
              r.problems.push_back(r.block.problem_at(
                  k, what + " key '" + key + "' is not read for plain RoPE (did you mean '" +
                         *guess + "'?)"));
          }
        read_sliding_rope(r, k, what, params, "DeepSeek-V4's sliding layers", c);
      } else if (kind != "rope_type" && kind != "type") {
        r.problems.push_back(r.block.problem_at(
            k, what + " is not a rope kind (DeepSeek-V4 has main and compress)"));
      }
    }
    c.partial_rotary_factor = compress_factor;
    if (main_factor != compress_factor)
      r.problems.push_back(r.block.problem_at(
          k, k + ".main rotates " + json_text(json(main_factor)) + " of each head and " + k +
                 ".compress " + json_text(json(compress_factor)) +
                 " (partial_rotary_factor, 1 when absent); pinmark implements one rotary width "
                 "for both"));
    return;
  }
  // The flat table's own base and rotary width are overwritten by compress_rope_theta and the
  // top-level width (partial_rotary_factor, qk_rope_head_dim or 64 / 512).
  json table = v;
  if (table.is_object()) {
    table.erase("rope_theta");
    table.erase("partial_rotary_factor");
  }
  const double theta = c.rope_theta;
  read_rope(r, k, table, c);
  c.rope_theta = theta;
  if (c.rope_type == "yarn" && table.is_object() && !table.contains("attention_factor"))
    c.rope_attention_factor = 1.0;
}

// DeepSeek-V4's compress_rates: {"compressed_sparse_attention": m, "heavily_compressed_attention":
// m'}, either may be left to its default.
void read_compress_rates(Reader& r, const std::string& k, const json& v, ModelConfig& c) {
  if (v.is_null()) return;
  if (!v.is_object()) {
    r.problems.push_back(r.block.problem_at(k, k + " must be an object, got " + json_text(v)));
    return;
  }
  for (const auto& [type, rate] : v.items()) {
    if (type == "compressed_sparse_attention")
      r.integer(k + "." + type, rate, c.csa_compress_rate);
    else if (type == "heavily_compressed_attention")
      r.integer(k + "." + type, rate, c.hca_compress_rate);
    else
      r.problems.push_back(r.block.problem_at(
          k, k + "." + type + " is not a compressed layer type (DeepSeek-V4 has "
                 "compressed_sparse_attention and heavily_compressed_attention)"));
  }
}

// Gemma 3n's intermediate_size: one width for every layer, or a list with each layer's.
void read_layer_widths(Reader& r, const std::string& k, const json& v, ModelConfig& c) {
  c.layer_intermediate_sizes.clear();
  if (!v.is_array()) {
    r.integer(k, v, c.intermediate_size);
    return;
  }
  const std::string wanted = k + " must be an integer or a list of integers, got ";
  int widest = 0;
  for (const json& w : v) {
    int width = 0;
    if (!w.is_number_integer() || !r.integer(k, w, width)) {
      r.problems.push_back(r.block.problem_at(k, wanted + json_text(v)));
      c.layer_intermediate_sizes.clear();
      return;
    }
    c.layer_intermediate_sizes.push_back(width);
    widest = std::max(widest, width);
  }
  c.intermediate_size = v.empty() ? 0 : widest;
}

// Gemma 3n's activation_sparsity_pattern: each layer's target sparsity, or null for
// Gemma3nTextConfig's default (resolved once num_hidden_layers is known).
void read_sparsity_pattern(Reader& r, const std::string& k, const json& v, ModelConfig& c) {
  c.activation_sparsity_pattern.clear();
  if (v.is_null()) return;
  const std::string wanted = k + " must be a list of numbers, one per layer, or null, got ";
  if (!v.is_array() || v.empty()) {
    r.problems.push_back(r.block.problem_at(k, wanted + json_text(v)));
    return;
  }
  for (const json& p : v) {
    if (!p.is_number()) {
      r.problems.push_back(r.block.problem_at(k, wanted + json_text(v)));
      c.activation_sparsity_pattern.clear();
      return;
    }
    c.activation_sparsity_pattern.push_back(p.get<double>());
  }
}

// Qwen3-MoE's mlp_only_layers: layer indices whose MLP is dense.
void read_mlp_only_layers(Reader& r, const std::string& k, const json& v, ModelConfig& c) {
  c.mlp_only_layers.clear();
  if (v.is_null()) return;
  const std::string wanted = k + " must be a list of layer indices (non-negative integers), got ";
  if (!v.is_array()) {
    r.problems.push_back(r.block.problem_at(k, wanted + json_text(v)));
    return;
  }
  for (const json& i : v) {
    int layer = -1;
    if (!i.is_number_integer() || !r.integer(k, i, layer) || layer < 0) {
      r.problems.push_back(r.block.problem_at(k, wanted + json_text(v)));
      return;
    }
    c.mlp_only_layers.push_back(layer);
  }
}

void read_activation(Reader& r, const std::string& k, const json& v, ModelConfig& c) {
  if (!v.is_string()) {
    r.problems.push_back(r.block.problem_at(k, k + " must be a string, got " + json_text(v)));
    return;
  }
  c.hidden_act = v.get<std::string>();
}

// Gemma 2's hidden_activation, checked here so that a refusal names this key and not the
// hidden_act that validate() knows it by.
void read_gemma2_activation(Reader& r, const std::string& k, const json& v, ModelConfig& c) {
  static const std::vector<std::string> implemented = {"silu", "gelu", "gelu_new",
                                                       "gelu_pytorch_tanh"};
  if (v.is_string() &&
      std::find(implemented.begin(), implemented.end(), v.get<std::string>()) == implemented.end()) {
    r.problems.push_back(r.block.problem_at(
        k, k + " " + json_text(v) +
               " is not supported (pinmark implements silu, gelu, gelu_new and gelu_pytorch_tanh); "
               "set it to one of these"));
    return;
  }
  read_activation(r, k, v, c);
}

// cache_implementation picks the KV cache generate() builds (Gemma 2 publishes "hybrid").
// Every cache but "quantized" keeps keys and values exactly, as pinmark's cache does; the
// quantized one rounds them to a few bits and so computes other numbers.
void read_cache_implementation(Reader& r, const std::string& k, const json& v, ModelConfig&) {
  static const std::vector<std::string> exact = {
      "dynamic",   "static",        "offloaded",          "offloaded_static",
      "hybrid",    "hybrid_chunked", "offloaded_hybrid", "offloaded_hybrid_chunked",
      "sliding_window"};
  if (v.is_null()) return;
  if (v.is_string() &&
      std::find(exact.begin(), exact.end(), v.get<std::string>()) != exact.end())
    return;
  r.problems.push_back(r.block.problem_at(
      k, k + " " + json_text(v) +
             " is not supported (pinmark keeps keys and values exactly: dynamic, static, "
             "offloaded, offloaded_static, hybrid, hybrid_chunked, offloaded_hybrid, "
             "offloaded_hybrid_chunked, sliding_window or null); set it to one of these"));
}

// Every key a rope type of transformers' modeling_rope_utils reads.
const std::vector<std::string>& all_rope_keys() {
  static const std::vector<std::string> keys = {
      "rope_theta",       "factor",          "low_freq_factor", "high_freq_factor",
      "original_max_position_embeddings",    "beta_fast",       "beta_slow",
      "mscale",           "mscale_all_dim",  "attention_factor", "truncate",
      "short_factor",     "long_factor",     "partial_rotary_factor"};
  return keys;
}

// partial_rotary_factor: transformers computes inv_freq for int(head_dim * factor) dimensions,
// but the Llama-family attention pinmark implements (llama, mistral, mixtral, qwen2, qwen3,
// gemma, gemma2) multiplies the whole head by cos and sin, so any factor but 1 fails there
// with a shape error: pinmark accepts 1 and refuses the rest. Phi-3's attention rotates the
// first int(head_dim * factor) values and passes the rest through, as does Qwen3-Next's, so
// phi3 and qwen3_next read it.
void read_partial_rotary_factor(Reader& r, const std::string& k, const json& v,
                                const std::string& what, ModelConfig& c) {
  // Phi-3's and Qwen3-Next's attention rotate the first int(head_dim * factor) values of each
  // head (Qwen3-Next's default factor is 0.25, so 1.0 is a value to read there), DeepSeek-V4's
  // the last ones.
  if (c.model_type == "phi3" || c.model_type == "qwen3_next" || c.model_type == "deepseek_v4") {
    if (v.is_null()) return;
    if (!v.is_number())
      r.problems.push_back(r.block.problem_at(k, what + " must be a number, got " + json_text(v)));
    else
      c.partial_rotary_factor = v.get<double>();
    return;
  }
  if (v.is_null() || (v.is_number() && v.get<double>() == 1.0)) return;
  r.problems.push_back(r.block.problem_at(
      k, what + " " + json_text(v) +
             " is not supported: this family's attention rotates the whole head (transformers "
             "fails on a partial rotary table for it); set it to 1.0 or remove it"));
}

// rope_scaling (transformers 4.x) and rope_parameters (5.x, which also carries rope_theta):
// {"rope_type" or "type": "default" | "linear" | "llama3" | "dynamic" | "yarn" | "longrope", and
// that type's parameters}, the keys each type reads in transformers' modeling_rope_utils.
void read_rope(Reader& r, const std::string& k, const json& v, ModelConfig& c) {
  if (v.is_null()) return;
  if (!v.is_object()) {
    r.problems.push_back(r.block.problem_at(k, k + " must be an object or null, got " + json_text(v)));
    return;
  }
  std::string type = "default";
  for (const char* name : {"type", "rope_type"})
    if (v.contains(name)) {
      if (!v[name].is_string()) {
        r.problems.push_back(r.block.problem_at(k, k + " " + name + " must be a string, got " +
                                                       json_text(v[name])));
        return;
      }
      type = v[name].get<std::string>();
    }
  using Keys = std::vector<std::string>;
  Keys required, optional{"rope_theta"};
  if (type == "linear" || type == "dynamic") required = {"factor"};
  if (type == "dynamic") optional.push_back("original_max_position_embeddings");  // not read
  if (type == "llama3")
    required = {"factor", "low_freq_factor", "high_freq_factor",
                "original_max_position_embeddings"};
  if (type == "yarn") {
    required = {"factor", "original_max_position_embeddings"};
    optional.insert(optional.end(), {"beta_fast", "beta_slow", "mscale", "mscale_all_dim",
                                     "attention_factor", "truncate"});
  }
  if (type == "longrope") {
    required = {"short_factor", "long_factor", "original_max_position_embeddings"};
    optional.insert(optional.end(), {"factor", "attention_factor"});
  }
  if (type != "default" && required.empty()) {
    r.problems.push_back(r.block.problem_at(
        k, k + " " + json_text(v) +
               " is not supported (pinmark implements rope types default, linear, llama3, "
               "dynamic, yarn and longrope); set " +
               k + " to one of these or null"));
    return;
  }
  c.rope_type = type;
  // longrope reads factor with .get(): absent means max_position_embeddings / original.
  if (type == "longrope") c.rope_has_factor = v.contains("factor") && !v["factor"].is_null();
  const auto listed = [](const Keys& keys, const std::string& key) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
  };
  for (const auto& [key, value] : v.items()) {
    if (key == "type" || key == "rope_type") continue;
    if (key == "partial_rotary_factor") {
      read_partial_rotary_factor(r, k, value, k + "." + key, c);
      continue;
    }
    if (!listed(required, key) && !listed(optional, key)) {
      // transformers warns about a key its rope type does not read and goes on without it; so
      // does pinmark, unless the key is a letter or two from one it reads (a misspelling whose
      // value would be lost).
      if (auto guess = did_you_mean(key, all_rope_keys()); guess && *guess != key)
        r.problems.push_back(r.block.problem_at(
            k, k + " key '" + key + "' is not read for rope type " + type + " (did you mean '" +
                   *guess + "'?)"));
      continue;
    }
    const std::string what = k + "." + key;
    if (key == "original_max_position_embeddings") {
      r.integer(what, value, c.rope_original_max_position_embeddings);
      continue;
    }
    // transformers reads these with .get(), so null means "use the default" (beta_fast 32,
    // beta_slow 1, the derived attention factor, no mscale), and for yarn and longrope a null
    // factor is max_position_embeddings / original_max_position_embeddings.
    if (value.is_null() && (type == "yarn" || type == "longrope") &&
        (key == "factor" || listed({"beta_fast", "beta_slow", "mscale", "mscale_all_dim",
                                    "attention_factor", "truncate"},
                                   key))) {
      if (key == "factor") c.rope_has_factor = false;
      continue;
    }
    if (key == "truncate") {
      if (!value.is_boolean()) {
        r.problems.push_back(
            r.block.problem_at(k, what + " must be true or false, got " + json_text(value)));
        continue;
      }
      c.rope_truncate = value.get<bool>();
      continue;
    }
    if (key == "short_factor" || key == "long_factor") {
      std::vector<double> table;
      bool ok = value.is_array();
      if (ok)
        for (const json& e : value) {
          if (!e.is_number()) {
            ok = false;
            break;
          }
          table.push_back(e.get<double>());
        }
      if (!ok) {
        r.problems.push_back(
            r.block.problem_at(k, what + " must be an array of numbers, got " + json_text(value)));
        continue;
      }
      (key == "short_factor" ? c.rope_short_factor : c.rope_long_factor) = std::move(table);
      continue;
    }
    if (!value.is_number()) {
      r.problems.push_back(r.block.problem_at(k, what + " must be a number, got " + json_text(value)));
      continue;
    }
    const double number = value.get<double>();
    if ((key == "attention_factor" || key == "beta_fast" || key == "beta_slow") &&
        !(number > 0)) {
      r.problems.push_back(
          r.block.problem_at(k, what + " must be a positive number, got " + json_text(value)));
      continue;
    }
    if (key == "rope_theta") c.rope_theta = number;
    if (key == "factor") c.rope_factor = number;
    if (key == "low_freq_factor") c.rope_low_freq_factor = number;
    if (key == "high_freq_factor") c.rope_high_freq_factor = number;
    if (key == "attention_factor") c.rope_attention_factor = number;
    if (key == "beta_fast") c.rope_beta_fast = number;
    if (key == "beta_slow") c.rope_beta_slow = number;
    if (key == "mscale") c.rope_mscale = number;
    if (key == "mscale_all_dim") c.rope_mscale_all_dim = number;
  }
  for (const std::string& key : required)
    if (!v.contains(key))
      r.problems.push_back(
          r.block.problem_at(k, k + " of type " + type + " needs '" + key + "'"));
}

void read_pinmark(Reader& r, const std::string& k, const json& v, ModelConfig& c) {
  if (!v.is_object()) {
    r.problems.push_back(r.block.problem_at(k, "pinmark must be an object, got " + json_text(v)));
    return;
  }
  for (const auto& [key, value] : v.items()) {
    if (key == "seed") {
      if (!value.is_number_unsigned())
        r.problems.push_back(r.block.problem_at(
            key, "pinmark.seed must be an integer from 0 to 18446744073709551615, got " + json_text(value)));
      else
        c.seed = value.get<uint64_t>();
    } else if (key == "kv_shared_layers") {
      // Gemma 3n's num_kv_shared_layers, on any family: transformers reads that key only in
      // models whose other parts pinmark does not implement, so it is pinmark's own key here.
      if (auto n = r.block.integer(key, value, 0, INT_MAX, r.problems, "pinmark.kv_shared_layers"))
        c.num_kv_shared_layers = *n;
    } else if (key == "query_heads") {
      // Each layer's query heads (runtime/model_config.h); checked against the layers and
      // the KV heads with the rest of the config.
      c.query_heads.clear();
      const std::string wanted =
          "pinmark.query_heads must be a list of positive integers, one per layer, got ";
      bool ok = value.is_array() && !value.empty();
      for (const json& h : ok ? value : json::array()) {
        if (!h.is_number_integer() || h.get<int64_t>() <= 0 || h.get<int64_t>() > INT_MAX) {
          ok = false;
          break;
        }
        c.query_heads.push_back(static_cast<int>(h.get<int64_t>()));
      }
      if (!ok) {
        c.query_heads.clear();
        r.problems.push_back(r.block.problem_at(key, wanted + json_text(value)));
      }
    } else if (key == "mla_absorb") {
      // DeepSeek's MLA computed in the latent space (runtime/model_config.h says how).
      if (!value.is_boolean())
        r.problems.push_back(r.block.problem_at(
            key, "pinmark.mla_absorb must be true or false, got " + json_text(value)));
      else if (!is_deepseek(c))
        r.problems.push_back(r.block.problem_at(
            key, "pinmark.mla_absorb applies to deepseek_v3 and deepseek_v32 (MLA) only, not " +
                     c.model_type));
      else
        c.mla_absorb = value.get<bool>();
    } else {
      r.problems.push_back(r.block.problem_at(
          key, "unknown pinmark key '" + key +
                   "' (known: seed, kv_shared_layers, mla_absorb, query_heads; or checkpoint, "
                   "alone, to load a checkpoint folder)"));
    }
  }
}

void read_quantization_config(Reader& r, const std::string& k, const json& v, ModelConfig&) {
  if (v.is_null()) return;
  std::string method;
  if (v.is_object() && v.contains("quant_method") && v["quant_method"].is_string())
    method = " (quant_method " + json_text(v["quant_method"]) + ")";
  r.problems.push_back(r.block.problem_at(
      k, k + method + " is not supported: transformers loads these weights quantized, and "
             "pinmark computes with weights as stored; use the unquantized checkpoint's "
             "config.json, which has no quantization_config"));
}

// Every config.json key pinmark reads for `type`, by what it does to the model. The policy is
// transformers 5.x's: a key is refused only where that model_type's modeling code reads it at
// a value pinmark does not implement (the handlers below say which); a key the modeling code
// never reads (another family's key, a tool's own like SmolLM2's "transformers.js_config" or
// Qwen2.5's "use_mrope") changes nothing there, so it is accepted and listed as ignored.
KeyTable config_keys(const std::string& type) {
  KeyTable keys = {
      {"architectures",
       [type](Reader& r, const std::string& k, const json& v, ModelConfig&) {
         auto it = architecture_of().find(type);
         if (it == architecture_of().end()) return;
         const json expected = json::array({it->second});
         const json base = json::array({base_architecture_of().at(type)});
         if (v != expected && v != base)
           r.problems.push_back(r.block.problem_at(
               k, k + " " + json_text(v) + " does not agree with model_type \"" + type +
                      "\" (expected " + json_text(expected) + "); set it to " + json_text(expected) +
                      " or leave it out"));
       }},
      {"model_type", [](Reader&, const std::string&, const json&, ModelConfig&) {}},
      {"vocab_size", integer_key(&ModelConfig::vocab_size)},
      {"tie_word_embeddings", boolean_key(&ModelConfig::tie_word_embeddings)},
      {"pinmark", read_pinmark},
      // from_pretrained reads quantization_config and loads the weights quantized (fp8, GPTQ,
      // bitsandbytes, ...), which computes other numbers than the weights as stored.
      {"quantization_config", read_quantization_config},
  };
  if (type == "gpt2") {
    keys["n_embd"] = integer_key(&ModelConfig::hidden_size);
    keys["n_layer"] = integer_key(&ModelConfig::num_hidden_layers);
    keys["n_head"] = integer_key(&ModelConfig::num_attention_heads);
    keys["n_positions"] = integer_key(&ModelConfig::max_position_embeddings);
    keys["n_inner"] = [](Reader& r, const std::string& k, const json& v, ModelConfig& c) {
      if (v.is_null())
        c.intermediate_size = 0;  // 4 * n_embd
      else
        r.integer(k, v, c.intermediate_size);
    };
    keys["layer_norm_epsilon"] = number_key(&ModelConfig::rms_norm_eps);
    keys["activation_function"] = read_activation;
    keys["scale_attn_weights"] = only_key(true);
    keys["scale_attn_by_inverse_layer_idx"] = only_key(false);
    keys["add_cross_attention"] = only_key(false);
    // Upcasts the attention product to fp32, where pinmark's scores already are.
    keys["reorder_and_upcast_attn"] = [](Reader& r, const std::string& k, const json& v,
                                         ModelConfig&) {
      bool ignored = false;
      r.boolean(k, v, ignored);
    };
    return keys;
  }

  keys["hidden_size"] = integer_key(&ModelConfig::hidden_size);
  keys["intermediate_size"] = integer_key(&ModelConfig::intermediate_size);
  keys["num_hidden_layers"] = integer_key(&ModelConfig::num_hidden_layers);
  keys["num_attention_heads"] = integer_key(&ModelConfig::num_attention_heads);
  keys["num_key_value_heads"] = integer_key(&ModelConfig::num_key_value_heads);
  keys["head_dim"] = [](Reader& r, const std::string& k, const json& v, ModelConfig& c) {
    if (v.is_null())
      c.head_dim = 0;
    else
      r.integer(k, v, c.head_dim);
  };
  keys["max_position_embeddings"] = integer_key(&ModelConfig::max_position_embeddings);
  keys["rms_norm_eps"] = number_key(&ModelConfig::rms_norm_eps);
  keys["rope_theta"] = number_key(&ModelConfig::rope_theta);
  keys["rope_scaling"] = read_rope;
  keys["rope_parameters"] = read_rope;
  keys["partial_rotary_factor"] = [](Reader& r, const std::string& k, const json& v,
                                     ModelConfig& c) { read_partial_rotary_factor(r, k, v, k, c); };
  // Llama's MLP is SiLU in every released checkpoint; other activations are a different model
  // (see cases/errors/config.md), while the Gemma families choose theirs.
  keys["hidden_act"] = only_key("silu");

  if (type == "llama") {
    keys["attention_bias"] = boolean_key(&ModelConfig::attention_bias);
    keys["mlp_bias"] = only_key(false);
    keys["pretraining_tp"] = only_key(1);
  } else if (type == "mistral" || type == "mixtral") {
    keys["sliding_window"] = read_sliding_window;
    if (type == "mixtral") {
      keys["num_local_experts"] = integer_key(&ModelConfig::num_local_experts);
      keys["num_experts_per_tok"] = integer_key(&ModelConfig::num_experts_per_tok);
    }
  } else if (type == "deepseek_v3" || type == "deepseek_v32") {
    keys["attention_bias"] = boolean_key(&ModelConfig::attention_bias);
    keys["q_lora_rank"] = [](Reader& r, const std::string& k, const json& v, ModelConfig& c) {
      if (v.is_null())
        c.q_lora_rank = 0;  // one q_proj
      else if (r.integer(k, v, c.q_lora_rank) && c.q_lora_rank <= 0)
        r.problems.push_back(r.block.problem_at(k, k + " must be positive or null, got " + json_text(v)));
    };
    keys["kv_lora_rank"] = integer_key(&ModelConfig::kv_lora_rank);
    keys["qk_nope_head_dim"] = integer_key(&ModelConfig::qk_nope_head_dim);
    keys["qk_rope_head_dim"] = integer_key(&ModelConfig::qk_rope_head_dim);
    keys["v_head_dim"] = integer_key(&ModelConfig::v_head_dim);
    keys["rope_interleave"] = boolean_key(&ModelConfig::rope_interleave);
    keys["n_routed_experts"] = integer_key(&ModelConfig::num_local_experts);
    keys["num_local_experts"] = integer_key(&ModelConfig::num_local_experts);
    keys["num_experts_per_tok"] = integer_key(&ModelConfig::num_experts_per_tok);
    keys["n_shared_experts"] = integer_key(&ModelConfig::n_shared_experts);
    keys["moe_intermediate_size"] = integer_key(&ModelConfig::moe_intermediate_size);
    keys["n_group"] = integer_key(&ModelConfig::n_group);
    keys["topk_group"] = integer_key(&ModelConfig::topk_group);
    keys["norm_topk_prob"] = boolean_key(&ModelConfig::norm_topk_prob);
    keys["routed_scaling_factor"] = number_key(&ModelConfig::routed_scaling_factor);
    keys["first_k_dense_replace"] = integer_key(&ModelConfig::first_k_dense_replace);
    keys["pretraining_tp"] = only_key(1);
    // DeepseekV3Config derives head_dim (the rotary width) and qk_head_dim from the others.
    keys["head_dim"] = unused_integer_key();
    keys["qk_head_dim"] = keys["head_dim"];
    if (type == "deepseek_v32") {
      keys["index_topk"] = integer_key(&ModelConfig::index_topk);
      keys["index_head_dim"] = integer_key(&ModelConfig::index_head_dim);
      keys["index_n_heads"] = integer_key(&ModelConfig::index_n_heads);
      // Every entry deepseek_sparse_attention (the default, and the only kind it builds).
      keys["layer_types"] = read_layer_types;
      keys["mlp_layer_types"] = read_mlp_layer_types;
      // DeepseekV32Attention always interleaves the rotary part; the key is not read.
      keys.erase("rope_interleave");
    }
  } else if (type == "deepseek_v4") {
    keys["head_dim"] = integer_key(&ModelConfig::head_dim);
    // One shared key-and-value head whatever num_key_value_heads says (DeepseekV4Attention).
    keys["num_key_value_heads"] = unused_integer_key();
    keys["q_lora_rank"] = integer_key(&ModelConfig::q_lora_rank);
    // Legacy: the rotary width, folded into partial_rotary_factor when that is absent.
    keys["qk_rope_head_dim"] = integer_key(&ModelConfig::qk_rope_head_dim);
    // The bases: rope_theta the sliding layers', compress_rope_theta the compressed layers';
    // rope_parameters by kind, when given, carries both instead (and these are then not read).
    auto nested_rope = [](const json& config) {
      for (const char* key : {"rope_parameters", "rope_scaling"})
        if (config.contains(key) && config[key].is_object() &&
            (config[key].contains("main") || config[key].contains("compress")))
          return true;
      return false;
    };
    keys["rope_theta"] = [nested_rope](Reader& r, const std::string& k, const json& v,
                                       ModelConfig& c) {
      double base = c.rope_local_base_freq;
      r.number(k, v, base);
      if (!nested_rope(r.block.value)) c.rope_local_base_freq = base;
    };
    keys["compress_rope_theta"] = [nested_rope](Reader& r, const std::string& k, const json& v,
                                                ModelConfig& c) {
      double base = c.rope_theta;
      r.number(k, v, base);
      if (!nested_rope(r.block.value)) c.rope_theta = base;
    };
    keys["rope_scaling"] = read_deepseek_v4_rope;
    keys["rope_parameters"] = read_deepseek_v4_rope;
    keys["sliding_window"] = read_sliding_window;
    keys["layer_types"] = read_layer_types;
    // Legacy: per-layer rates 0, 4 or 128, which name the layer types when layer_types is
    // absent; resolved after all keys are read.
    keys["compress_ratios"] = [](Reader& r, const std::string& k, const json& v, ModelConfig&) {
      if (v.is_null()) return;
      bool ok = v.is_array();
      if (ok)
        for (const json& e : v)
          ok = ok && e.is_number_integer() && (e == 0 || e == 4 || e == 128);
      if (!ok)
        r.problems.push_back(r.block.problem_at(
            k, k + " must be a list of 0, 4 and 128 (sliding, compressed sparse and heavily "
                   "compressed attention), got " + json_text(v)));
    };
    keys["compress_rates"] = read_compress_rates;
    keys["compress_rate_csa"] = integer_key(&ModelConfig::csa_compress_rate);
    keys["compress_rate_hca"] = integer_key(&ModelConfig::hca_compress_rate);
    keys["mlp_layer_types"] = read_mlp_layer_types;
    // Legacy: the hash_moe layers that start mlp_layer_types when it is absent.
    keys["num_hash_layers"] = [](Reader& r, const std::string& k, const json& v, ModelConfig&) {
      int n = 0;
      if (r.integer(k, v, n) && n < 0)
        r.problems.push_back(r.block.problem_at(k, k + " must not be negative, got " + json_text(v)));
    };
    keys["hc_mult"] = integer_key(&ModelConfig::hc_mult);
    keys["hc_sinkhorn_iters"] = integer_key(&ModelConfig::hc_sinkhorn_iters);
    keys["hc_eps"] = number_key(&ModelConfig::hc_eps);
    keys["o_groups"] = integer_key(&ModelConfig::o_groups);
    keys["o_lora_rank"] = integer_key(&ModelConfig::o_lora_rank);
    keys["index_topk"] = integer_key(&ModelConfig::index_topk);
    keys["index_head_dim"] = integer_key(&ModelConfig::index_head_dim);
    keys["index_n_heads"] = integer_key(&ModelConfig::index_n_heads);
    keys["n_routed_experts"] = integer_key(&ModelConfig::num_local_experts);
    keys["num_local_experts"] = integer_key(&ModelConfig::num_local_experts);
    keys["num_experts_per_tok"] = integer_key(&ModelConfig::num_experts_per_tok);
    // DeepseekV4Config maps intermediate_size to moe_intermediate_size: the width of every
    // expert and of the one shared expert, which DeepseekV4SparseMoeBlock builds whatever
    // n_shared_experts says.
    keys["moe_intermediate_size"] = integer_key(&ModelConfig::moe_intermediate_size);
    keys["intermediate_size"] = integer_key(&ModelConfig::moe_intermediate_size);
    keys["n_shared_experts"] = unused_integer_key();
    keys["routed_scaling_factor"] = number_key(&ModelConfig::routed_scaling_factor);
    keys["scoring_func"] = [](Reader& r, const std::string& k, const json& v, ModelConfig& c) {
      if (v.is_string())
        c.scoring_func = v.get<std::string>();
      else
        r.problems.push_back(r.block.problem_at(k, k + " must be a string, got " + json_text(v)));
    };
    keys["swiglu_limit"] = number_key(&ModelConfig::swiglu_limit);
    keys["mlp_bias"] = only_key(false);
  } else if (type == "gpt_oss") {
    keys["attention_bias"] = boolean_key(&ModelConfig::attention_bias);
    keys["sliding_window"] = read_sliding_window;
    keys["layer_types"] = read_layer_types;
    keys["num_local_experts"] = integer_key(&ModelConfig::num_local_experts);
    keys["num_experts_per_tok"] = integer_key(&ModelConfig::num_experts_per_tok);
    // GptOssExperts computes its own clamped SwiGLU (alpha 1.702, limit 7 in code): neither
    // hidden_act nor swiglu_limit is read, nor experts_per_token or initial_context_length.
    keys.erase("hidden_act");
  } else if (type == "phi3") {
    // Phi3Attention and Phi3MLP have no biases and read no attention_bias; a window, when set,
    // applies to every layer.
    keys["sliding_window"] = read_sliding_window;
    // Phi3Config moves a top-level original_max_position_embeddings into longrope's
    // parameters when they lack it (Phi-3-mini-128k publishes it that way); otherwise no rope
    // type reads it.
    const KeyHandler rope = keys["rope_scaling"];
    const KeyHandler phi3_rope = [rope](Reader& r, const std::string& k, const json& v,
                                        ModelConfig& c) {
      json params = v;
      const auto type_is = [&](const char* t) {
        return (params.contains("type") && params["type"] == t) ||
               (params.contains("rope_type") && params["rope_type"] == t);
      };
      if (params.is_object() && type_is("longrope") &&
          !params.contains("original_max_position_embeddings") &&
          r.block.value.contains("original_max_position_embeddings"))
        params["original_max_position_embeddings"] =
            r.block.value["original_max_position_embeddings"];
      rope(r, k, params, c);
    };
    keys["rope_scaling"] = phi3_rope;
    keys["rope_parameters"] = phi3_rope;
    keys["original_max_position_embeddings"] = unused_integer_key();
  } else if (type == "olmo2") {
    keys["attention_bias"] = boolean_key(&ModelConfig::attention_bias);
  } else if (type == "qwen3_moe") {
    keys["attention_bias"] = boolean_key(&ModelConfig::attention_bias);
    // 4.x configs spell the expert count num_experts; transformers 5 maps it to
    // num_local_experts and writes that.
    keys["num_experts"] = integer_key(&ModelConfig::num_local_experts);
    keys["num_local_experts"] = integer_key(&ModelConfig::num_local_experts);
    keys["num_experts_per_tok"] = integer_key(&ModelConfig::num_experts_per_tok);
    keys["moe_intermediate_size"] = integer_key(&ModelConfig::moe_intermediate_size);
    keys["norm_topk_prob"] = boolean_key(&ModelConfig::norm_topk_prob);
    keys["decoder_sparse_step"] = integer_key(&ModelConfig::decoder_sparse_step);
    keys["mlp_only_layers"] = read_mlp_only_layers;
    // Qwen3MoeConfig keeps sliding_window only when use_sliding_window is true, and pinmark
    // implements Qwen3-MoE's full attention alone; with it off the window is read for nothing.
    keys["use_sliding_window"] = only_key(false);
    keys["sliding_window"] = unused_integer_key();
  } else if (type == "qwen3_next") {
    keys["attention_bias"] = boolean_key(&ModelConfig::attention_bias);
    keys["layer_types"] = read_layer_types;
    // Which layers are full attention when layer_types is absent: resolved after all keys.
    keys["full_attention_interval"] = [](Reader& r, const std::string& k, const json& v,
                                         ModelConfig&) {
      int n = 0;
      if (r.integer(k, v, n) && n <= 0)
        r.problems.push_back(r.block.problem_at(k, k + " must be positive, got " + json_text(v)));
    };
    keys["linear_conv_kernel_dim"] = integer_key(&ModelConfig::linear_conv_kernel_dim);
    keys["linear_key_head_dim"] = integer_key(&ModelConfig::linear_key_head_dim);
    keys["linear_value_head_dim"] = integer_key(&ModelConfig::linear_value_head_dim);
    keys["linear_num_key_heads"] = integer_key(&ModelConfig::linear_num_key_heads);
    keys["linear_num_value_heads"] = integer_key(&ModelConfig::linear_num_value_heads);
    keys["num_experts"] = integer_key(&ModelConfig::num_local_experts);
    keys["num_local_experts"] = integer_key(&ModelConfig::num_local_experts);
    keys["num_experts_per_tok"] = integer_key(&ModelConfig::num_experts_per_tok);
    keys["moe_intermediate_size"] = integer_key(&ModelConfig::moe_intermediate_size);
    keys["shared_expert_intermediate_size"] =
        integer_key(&ModelConfig::shared_expert_intermediate_size);
    keys["norm_topk_prob"] = boolean_key(&ModelConfig::norm_topk_prob);
    keys["decoder_sparse_step"] = integer_key(&ModelConfig::decoder_sparse_step);
    keys["mlp_only_layers"] = read_mlp_only_layers;
  } else if (type == "qwen2" || type == "qwen3") {
    // Resolved into layer_types and sliding_window after all keys are read.
    keys["use_sliding_window"] = [](Reader& r, const std::string& k, const json& v, ModelConfig&) {
      bool b = false;
      r.boolean(k, v, b);
    };
    keys["max_window_layers"] = [](Reader& r, const std::string& k, const json& v, ModelConfig&) {
      int n = 0;
      r.integer(k, v, n);
    };
    keys["sliding_window"] = read_sliding_window;
    keys["layer_types"] = read_layer_types;
    if (type == "qwen3") keys["attention_bias"] = boolean_key(&ModelConfig::attention_bias);
  } else if (type == "gemma3n_text") {
    keys["attention_bias"] = boolean_key(&ModelConfig::attention_bias);
    keys["intermediate_size"] = read_layer_widths;
    // Gemma3nTextMLP reads hidden_activation; hidden_act is not used.
    keys["hidden_activation"] = read_gemma2_activation;
    keys["hidden_act"] = [](Reader& r, const std::string& k, const json& v, ModelConfig&) {
      if (!v.is_null() && !v.is_string())
        r.problems.push_back(r.block.problem_at(k, k + " must be a string, got " + json_text(v)));
    };
    keys["sliding_window"] = read_sliding_window;
    keys["layer_types"] = read_layer_types;
    keys["final_logit_softcapping"] = optional_number_key(&ModelConfig::final_logit_softcapping);
    keys["cache_implementation"] = read_cache_implementation;
    keys["rope_local_base_freq"] = number_key(&ModelConfig::rope_local_base_freq);
    keys["rope_parameters"] = read_gemma3_rope;
    keys["rope_scaling"] = read_gemma3_rope;
    keys["num_kv_shared_layers"] = integer_key(&ModelConfig::num_kv_shared_layers);
    keys["vocab_size_per_layer_input"] = integer_key(&ModelConfig::vocab_size_per_layer_input);
    keys["hidden_size_per_layer_input"] = integer_key(&ModelConfig::hidden_size_per_layer_input);
    keys["altup_num_inputs"] = integer_key(&ModelConfig::altup_num_inputs);
    keys["altup_active_idx"] = integer_key(&ModelConfig::altup_active_idx);
    keys["altup_correct_scale"] = boolean_key(&ModelConfig::altup_correct_scale);
    keys["laurel_rank"] = integer_key(&ModelConfig::laurel_rank);
    keys["activation_sparsity_pattern"] = read_sparsity_pattern;
    // Gemma3nTextAltUp clamps its coefficient weights to altup_coef_clip in training only
    // (transformers 5.17); inference uses them as stored.
    keys["altup_coef_clip"] = [](Reader& r, const std::string& k, const json& v, ModelConfig&) {
      double clip = 0;
      if (!v.is_null()) r.number(k, v, clip);
    };
  } else if (type == "gemma" || type == "gemma2" || type == "gemma3_text") {
    keys["attention_bias"] = boolean_key(&ModelConfig::attention_bias);
    keys["use_bidirectional_attention"] = [](Reader& r, const std::string& k, const json& v,
                                             ModelConfig&) {
      if (!v.is_null()) r.only(k, v, false);
    };
    if (type == "gemma") {
      // transformers 5.x builds GemmaMLP from hidden_act; hidden_activation (which 4.x
      // preferred) is kept on the config but no longer read. google/gemma-2b publishes
      // "hidden_act": "gelu", and GemmaMLP computes exactly that: `self.act_fn =
      // ACT2FN[config.hidden_act]` (transformers src/transformers/models/gemma/modeling_gemma.py),
      // and ACT2FN["gelu"] is GELUActivation, the exact erf form. The override some 4.x
      // releases applied (hidden_activation, defaulting to the tanh approximation
      // gelu_pytorch_tanh) is gone, so pinmark computes the erf GELU too (runtime/model.cpp)
      // and does not substitute gelu_pytorch_tanh.
      keys["hidden_act"] = read_activation;
      keys["hidden_activation"] = [](Reader& r, const std::string& k, const json& v,
                                     ModelConfig&) {
        if (!v.is_null() && !v.is_string())
          r.problems.push_back(r.block.problem_at(k, k + " must be a string, got " + json_text(v)));
      };
    } else {
      // Gemma2MLP and Gemma3MLP read hidden_activation; hidden_act is not used.
      keys["hidden_activation"] = read_gemma2_activation;
      keys["hidden_act"] = [](Reader& r, const std::string& k, const json& v, ModelConfig&) {
        if (!v.is_null() && !v.is_string())
          r.problems.push_back(r.block.problem_at(k, k + " must be a string, got " + json_text(v)));
      };
      keys["query_pre_attn_scalar"] = number_key(&ModelConfig::query_pre_attn_scalar);
      keys["sliding_window"] = read_sliding_window;
      // Google's own config.json carries sliding_window_size beside sliding_window (it is in
      // the ignored keys below, so the rendered case lists it).
      // Gemma2Config keeps it as a plain attribute that no modeling code reads: the window is
      // sliding_window's, even where the two disagree.
      keys["cache_implementation"] = read_cache_implementation;
      keys["layer_types"] = read_layer_types;
      keys["attn_logit_softcapping"] = optional_number_key(&ModelConfig::attn_logit_softcapping);
      keys["final_logit_softcapping"] = optional_number_key(&ModelConfig::final_logit_softcapping);
    }
    if (type == "gemma3_text") {
      // Sliding layers rotate with plain RoPE of their own base; rope_scaling and rope_theta
      // are the full layers'. transformers 5 nests both in rope_parameters by layer type.
      keys["rope_local_base_freq"] = number_key(&ModelConfig::rope_local_base_freq);
      keys["rope_parameters"] = read_gemma3_rope;
      keys["rope_scaling"] = read_gemma3_rope;
      // Which layers slide when layer_types is absent: resolved after all keys are read.
      for (const char* pattern : {"sliding_window_pattern", "_sliding_window_pattern"})
        keys[pattern] = [](Reader& r, const std::string& k, const json& v, ModelConfig&) {
          int n = 0;
          if (!v.is_null() && r.integer(k, v, n) && n <= 0)
            r.problems.push_back(r.block.problem_at(k, k + " must be positive, got " + json_text(v)));
        };
    }
  }
  return keys;
}

// Keys of a real config.json that do not change the numbers of inference, accepted without the
// misspelling check (bos_token_id and eos_token_id are a letter apart).
const std::vector<std::string>& ignored_config_keys(const std::string& type) {
  static const std::vector<std::string> common = {
      "bos_token_id",         "eos_token_id", "pad_token_id",         "initializer_range",
      "torch_dtype",          "dtype",        "transformers_version", "use_cache",
      "attention_dropout"};
  static const std::map<std::string, std::vector<std::string>> extra = {
      {"gpt2",
       {"resid_pdrop", "embd_pdrop", "attn_pdrop", "summary_type", "summary_use_proj",
        "summary_activation", "summary_proj_to_labels", "summary_first_dropout", "n_ctx",
        "task_specific_params"}},
      // Training-only: jitter noise is applied only in training mode, the others feed the loss.
      {"mixtral", {"router_jitter_noise", "output_router_logits", "router_aux_loss_coef"}},
      // Gemma2Config keeps sliding_window_size as a plain attribute no modeling code reads:
      // the window is sliding_window's, even where the two disagree.
      {"gemma2", {"sliding_window_size"}},
      {"qwen3_moe", {"output_router_logits", "router_aux_loss_coef", "max_window_layers"}},
      {"phi3", {"resid_pdrop", "embd_pdrop"}},
      {"gpt_oss", {"output_router_logits", "router_aux_loss_coef"}},
      {"qwen3_next", {"output_router_logits", "router_aux_loss_coef"}},
      // DeepseekV3's modeling code reads none of these: scoring is always sigmoid with the
      // correction bias, every layer from first_k_dense_replace on is sparse, and the
      // multi-token-prediction layers are not built.
      {"deepseek_v3",
       {"aux_loss_alpha", "seq_aux", "ep_size", "topk_method", "scoring_func", "moe_layer_freq",
        "num_nextn_predict_layers", "output_router_logits", "router_aux_loss_coef"}},
      // DeepseekV32's likewise, and its attention interleaves the rotary part whatever
      // rope_interleave says; its MLPs have no bias whatever mlp_bias says.
      {"deepseek_v32",
       {"aux_loss_alpha", "seq_aux", "ep_size", "topk_method", "scoring_func", "moe_layer_freq",
        "num_nextn_predict_layers", "output_router_logits", "router_aux_loss_coef",
        "rope_interleave", "mlp_bias"}},
      // DeepseekV4's modeling code reads none of these: its router always renormalises the
      // chosen scores and always picks by score plus correction bias, its projections have no
      // bias, jitter applies in training only, and the multi-token-prediction layers are not
      // built.
      {"deepseek_v4",
       {"norm_topk_prob", "topk_method", "attention_bias", "num_nextn_predict_layers",
        "output_router_logits", "router_aux_loss_coef", "router_jitter_noise"}},
  };
  static std::map<std::string, std::vector<std::string>> merged;
  auto it = merged.find(type);
  if (it != merged.end()) return it->second;
  std::vector<std::string> keys = common;
  if (auto e = extra.find(type); e != extra.end())
    keys.insert(keys.end(), e->second.begin(), e->second.end());
  return merged.emplace(type, keys).first->second;
}

std::vector<std::string> required_config_keys(const std::string& type) {
  if (type == "gpt2") return {"vocab_size", "n_embd", "n_layer", "n_head"};
  // DeepSeek-V4 spells the MLP width moe_intermediate_size (DeepSeek-V4-Flash's default when
  // absent, as for its other sizes).
  if (type == "deepseek_v4")
    return {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"};
  return {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
          "num_attention_heads"};
}

// Qwen2/Qwen3: the sliding window is off unless use_sliding_window, and then it applies to
// layers from max_window_layers on (transformers 5.x's default layer_types).
void resolve_qwen_window(const JsonBlock& block, ModelConfig& c,
                         std::vector<CaseProblem>& problems) {
  const json& v = block.value;
  const bool use = v.contains("use_sliding_window") && v["use_sliding_window"].is_boolean() &&
                   v["use_sliding_window"].get<bool>();
  const int max_window_layers = v.contains("max_window_layers") &&
                                        v["max_window_layers"].is_number_integer()
                                    ? v["max_window_layers"].get<int>()
                                    : 28;
  if (!use) {
    for (const std::string& t : c.layer_types)
      if (t == "sliding_attention") {
        problems.push_back(block.problem_at(
            "layer_types",
            "layer_types has sliding_attention layers but use_sliding_window is false"));
        break;
      }
    c.sliding_window = 0;
    return;
  }
  if (!v.contains("sliding_window")) c.sliding_window = 4096;
  // Qwen2Config: layer i slides only when `self.sliding_window is not None and i >=
  // self.max_window_layers`, so "sliding_window": null beside "use_sliding_window": true
  // leaves every layer on full attention (and so does pinmark's window of 0).
  if (c.layer_types.empty() && c.num_hidden_layers > 0) {
    for (int i = 0; i < c.num_hidden_layers; ++i)
      c.layer_types.push_back(c.sliding_window > 0 && i >= max_window_layers ? "sliding_attention"
                                                                             : "full_attention");
  }
}

// DeepseekV4Config.__post_init__: layer_types from the legacy compress_ratios or the default
// (two HCA layers, then HCA and CSA alternating); mlp_layer_types num_hash_layers (default 3)
// hash_moe layers, then moe; both cut to num_hidden_layers (DeepSeek-V4-Flash lists one more
// rate, its multi-token-prediction layer's). The rotary width from qk_rope_head_dim when
// partial_rotary_factor is not given; one shared KV head; intermediate_size is the experts'.
void resolve_deepseek_v4(const JsonBlock& block, ModelConfig& c) {
  const json& v = block.value;
  const int n = c.num_hidden_layers;
  if (!v.contains("layer_types") || v["layer_types"].is_null()) {
    c.layer_types.clear();
    if (v.contains("compress_ratios") && v["compress_ratios"].is_array()) {
      for (const json& e : v["compress_ratios"])
        c.layer_types.push_back(e == 4     ? "compressed_sparse_attention"
                                : e == 128 ? "heavily_compressed_attention"
                                           : "sliding_attention");
    } else {
      for (int i = 0; i < n; ++i)
        c.layer_types.push_back(i >= 2 && (i - 2) % 2 ? "compressed_sparse_attention"
                                                      : "heavily_compressed_attention");
    }
  }
  if (static_cast<int>(c.layer_types.size()) > n) c.layer_types.resize(n);
  if (!v.contains("mlp_layer_types") || v["mlp_layer_types"].is_null()) {
    int hash = 3;
    if (v.contains("num_hash_layers") && v["num_hash_layers"].is_number_integer())
      hash = v["num_hash_layers"].get<int>();
    c.mlp_layer_types.clear();
    for (int i = 0; i < n; ++i) c.mlp_layer_types.push_back(i < hash ? "hash_moe" : "moe");
  }
  if (static_cast<int>(c.mlp_layer_types.size()) > n) c.mlp_layer_types.resize(n);
  // Nested rope_parameters carry their own width (read_deepseek_v4_rope); otherwise
  // partial_rotary_factor, else qk_rope_head_dim / head_dim, else 64 / 512.
  bool nested = false;
  for (const char* key : {"rope_parameters", "rope_scaling"})
    nested = nested || (v.contains(key) && v[key].is_object() &&
                        (v[key].contains("main") || v[key].contains("compress")));
  const bool factor_given = v.contains("partial_rotary_factor") && !v["partial_rotary_factor"].is_null();
  if (!nested && !factor_given && c.qk_rope_head_dim > 0) {
    const int hd = c.head_dim > 0 ? c.head_dim : 512;
    c.partial_rotary_factor = static_cast<double>(c.qk_rope_head_dim) / hd;
  }
  c.qk_rope_head_dim = 0;
  c.num_key_value_heads = 1;
  c.intermediate_size = c.moe_intermediate_size;
}

}  // namespace

std::string causal_lm_class(const std::string& model_type) {
  auto it = architecture_of().find(model_type);
  return it == architecture_of().end() ? "" : it->second;
}

std::vector<std::string> unread_config_keys(const nlohmann::json& config) {
  std::vector<std::string> out;
  if (!config.is_object()) return out;
  std::string type = "llama";
  if (config.contains("model_type")) {
    const json& v = config["model_type"];
    const std::vector<std::string>& known = known_model_types();
    if (!v.is_string() ||
        std::find(known.begin(), known.end(), v.get<std::string>()) == known.end())
      return out;
    type = v.get<std::string>();
  }
  const KeyTable keys = config_keys(type);
  for (const auto& [key, value] : config.items())
    if (!keys.count(key)) out.push_back(key);
  return out;
}

void read_config(const JsonBlock& block, ModelConfig& config, std::vector<CaseProblem>& problems) {
  std::string type = "llama";
  if (block.value.contains("model_type")) {
    const json& v = block.value["model_type"];
    const std::vector<std::string>& known = known_model_types();
    if (!v.is_string() ||
        std::find(known.begin(), known.end(), v.get<std::string>()) == known.end()) {
      std::string list;
      for (const std::string& t : known) list += (list.empty() ? "\"" : ", \"") + t + "\"";
      // A multimodal config wraps the language model's in text_config.
      if (v.is_string() && block.value.contains("text_config") &&
          block.value["text_config"].is_object() &&
          block.value["text_config"].contains("model_type") &&
          block.value["text_config"]["model_type"].is_string()) {
        const std::string text = block.value["text_config"]["model_type"].get<std::string>();
        if (std::find(known.begin(), known.end(), text) != known.end()) {
          problems.push_back(block.problem_at(
              "model_type", "model_type " + json_text(v) + " is a multimodal config; pinmark "
                            "computes its language model: paste its text_config (model_type \"" +
                                text + "\") as the Config block"));
          return;
        }
      }
      problems.push_back(block.problem_at(
          "model_type", "model_type " + json_text(v) + " is not supported (pinmark implements " +
                            list + "); pinmark cannot compute this family, so use the "
                            "config.json of a model of one of these"));
      return;
    }
    type = v.get<std::string>();
  }
  const uint64_t seed = config.seed;
  config = family_defaults(type);
  config.seed = seed;

  Reader reader{block, problems};
  const KeyTable keys = config_keys(type);
  std::vector<std::string> known;
  for (const auto& [key, handler] : keys) known.push_back(key);
  const std::vector<std::string>& ignored = ignored_config_keys(type);
  for (const auto& [key, value] : block.value.items()) {
    auto handler = keys.find(key);
    if (handler != keys.end()) {
      handler->second(reader, key, value, config);
      continue;
    }
    if (std::find(ignored.begin(), ignored.end(), key) != ignored.end()) continue;
    // A key the family's modeling code does not read changes nothing in transformers, so it
    // is accepted (and the rendered case lists it). One that is a letter or two away from a
    // key pinmark reads is most likely that key misspelt, whose value would then be lost.
    if (auto guess = did_you_mean(key, known)) {
      std::string message = "unknown config key '" + key + "'";
      if (type != "llama") message += " for model_type \"" + type + "\"";
      message += " (did you mean '" + *guess + "'?)";
      problems.push_back(block.problem_at(key, message));
    }
  }
  for (const std::string& key : required_config_keys(type))
    if (!block.value.contains(key))
      problems.push_back(block.problem_at("", "missing required key '" + key + "'"));
  // Layer lists are built per layer below; a count no model has is refused before that.
  if (config.num_hidden_layers > kMaxLayers) {
    const std::string key = type == "gpt2" ? "n_layer" : "num_hidden_layers";
    problems.push_back(block.problem_at(key, key + " " + std::to_string(config.num_hidden_layers) +
                                                 " is more than the " + std::to_string(kMaxLayers) +
                                                 " layers pinmark builds"));
  }
  if (!problems.empty()) return;
  if (type == "qwen2" || type == "qwen3") resolve_qwen_window(block, config, problems);
  if ((type == "gemma2" || type == "gpt_oss") && config.layer_types.empty() &&
      config.num_hidden_layers > 0)
    for (int i = 0; i < config.num_hidden_layers; ++i)
      config.layer_types.push_back((i + 1) % 2 ? "sliding_attention" : "full_attention");
  // Qwen3NextConfig: every full_attention_interval-th layer is full attention (default 4),
  // the others Gated DeltaNet.
  if (type == "qwen3_next" && config.layer_types.empty() && config.num_hidden_layers > 0) {
    int interval = 4;
    if (block.value.contains("full_attention_interval") &&
        block.value["full_attention_interval"].is_number_integer())
      interval = block.value["full_attention_interval"].get<int>();
    for (int i = 0; i < config.num_hidden_layers; ++i)
      config.layer_types.push_back((i + 1) % interval ? "linear_attention" : "full_attention");
  }
  // Gemma3TextConfig: every sliding_window_pattern-th layer is full (default 6).
  if (type == "gemma3_text" && config.layer_types.empty() && config.num_hidden_layers > 0) {
    int pattern = 6;
    for (const char* key : {"sliding_window_pattern", "_sliding_window_pattern"})
      if (block.value.contains(key) && block.value[key].is_number_integer())
        pattern = block.value[key].get<int>();
    for (int i = 0; i < config.num_hidden_layers; ++i)
      config.layer_types.push_back((i + 1) % pattern ? "sliding_attention" : "full_attention");
  }
  // Gemma3nTextConfig: every fifth layer is full; the first 10 layers are 0.95 sparse when
  // there are more than 10.
  if (type == "gemma3n_text" && config.num_hidden_layers > 0) {
    if (config.layer_types.empty())
      for (int i = 0; i < config.num_hidden_layers; ++i)
        config.layer_types.push_back((i + 1) % 5 ? "sliding_attention" : "full_attention");
    if (config.activation_sparsity_pattern.empty()) {
      const int sparse = config.num_hidden_layers > 10 ? 10 : 0;
      for (int i = 0; i < config.num_hidden_layers; ++i)
        config.activation_sparsity_pattern.push_back(i < sparse ? 0.95 : 0.0);
    }
  }
  if (type == "deepseek_v4") resolve_deepseek_v4(block, config);
  if (!problems.empty()) return;
  for (const ConfigProblem& p : validate(config)) problems.push_back(block.problem_at(p.key, p.message));
  if (problems.empty()) config = with_defaults(config);
}

}  // namespace pinmark
