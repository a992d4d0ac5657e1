#include "driver/hf_config.h"

#include <algorithm>
#include <functional>
#include <map>
#include <string>

namespace pinmark {
namespace {

using nlohmann::json;

std::string show(const json& value) { return value.dump(); }

// Reads one typed config value, or records why it cannot.
struct Reader {
  const JsonBlock& block;
  std::vector<CaseProblem>& problems;

  bool integer(const std::string& key, const json& value, int& out) {
    if (!value.is_number_integer()) {
      problems.push_back(block.problem_at(key, key + " must be an integer, got " + show(value)));
      return false;
    }
    out = value.get<int>();
    return true;
  }
  bool number(const std::string& key, const json& value, double& out) {
    if (!value.is_number()) {
      problems.push_back(block.problem_at(key, key + " must be a number, got " + show(value)));
      return false;
    }
    out = value.get<double>();
    return true;
  }
  bool boolean(const std::string& key, const json& value, bool& out) {
    if (!value.is_boolean()) {
      problems.push_back(block.problem_at(key, key + " must be true or false, got " + show(value)));
      return false;
    }
    out = value.get<bool>();
    return true;
  }
  // A key pinmark accepts only at the one value it implements.
  void only(const std::string& key, const json& value, const json& supported) {
    if (value != supported)
      problems.push_back(block.problem_at(key, key + " " + show(value) +
                                                   " is not supported (pinmark implements " +
                                                   show(supported) + ")"));
  }
};

using KeyHandler = std::function<void(Reader&, const std::string&, const json&, ModelConfig&)>;

// Every config.json key pinmark knows, by what it does to the model.
const std::map<std::string, KeyHandler>& config_keys() {
  static const std::map<std::string, KeyHandler> keys = {
      {"architectures",
       [](Reader& r, const std::string& k, const json& v, ModelConfig&) {
         r.only(k, v, json::array({"LlamaForCausalLM"}));
       }},
      {"model_type",
       [](Reader& r, const std::string& k, const json& v, ModelConfig& c) {
         r.only(k, v, "llama");
         if (v.is_string()) c.model_type = v.get<std::string>();
       }},
      {"vocab_size", [](Reader& r, const std::string& k, const json& v,
                        ModelConfig& c) { r.integer(k, v, c.vocab_size); }},
      {"hidden_size", [](Reader& r, const std::string& k, const json& v,
                         ModelConfig& c) { r.integer(k, v, c.hidden_size); }},
      {"intermediate_size", [](Reader& r, const std::string& k, const json& v,
                               ModelConfig& c) { r.integer(k, v, c.intermediate_size); }},
      {"num_hidden_layers", [](Reader& r, const std::string& k, const json& v,
                               ModelConfig& c) { r.integer(k, v, c.num_hidden_layers); }},
      {"num_attention_heads", [](Reader& r, const std::string& k, const json& v,
                                 ModelConfig& c) { r.integer(k, v, c.num_attention_heads); }},
      {"num_key_value_heads", [](Reader& r, const std::string& k, const json& v,
                                 ModelConfig& c) { r.integer(k, v, c.num_key_value_heads); }},
      {"head_dim", [](Reader& r, const std::string& k, const json& v,
                      ModelConfig& c) { r.integer(k, v, c.head_dim); }},
      {"max_position_embeddings",
       [](Reader& r, const std::string& k, const json& v, ModelConfig& c) {
         r.integer(k, v, c.max_position_embeddings);
       }},
      {"rms_norm_eps", [](Reader& r, const std::string& k, const json& v,
                          ModelConfig& c) { r.number(k, v, c.rms_norm_eps); }},
      {"rope_theta", [](Reader& r, const std::string& k, const json& v,
                        ModelConfig& c) { r.number(k, v, c.rope_theta); }},
      {"tie_word_embeddings", [](Reader& r, const std::string& k, const json& v,
                                 ModelConfig& c) { r.boolean(k, v, c.tie_word_embeddings); }},
      {"hidden_act", [](Reader& r, const std::string& k, const json& v,
                        ModelConfig&) { r.only(k, v, "silu"); }},
      {"attention_bias", [](Reader& r, const std::string& k, const json& v,
                            ModelConfig&) { r.only(k, v, false); }},
      {"mlp_bias", [](Reader& r, const std::string& k, const json& v,
                      ModelConfig&) { r.only(k, v, false); }},
      {"rope_scaling", [](Reader& r, const std::string& k, const json& v,
                          ModelConfig&) { r.only(k, v, nullptr); }},
      {"pretraining_tp", [](Reader& r, const std::string& k, const json& v,
                            ModelConfig&) { r.only(k, v, 1); }},
      {"pinmark",
       [](Reader& r, const std::string& k, const json& v, ModelConfig& c) {
         if (!v.is_object()) {
           r.problems.push_back(r.block.problem_at(k, "pinmark must be an object, got " + show(v)));
           return;
         }
         for (const auto& [key, value] : v.items()) {
           if (key == "seed") {
             if (!value.is_number_unsigned())
               r.problems.push_back(r.block.problem_at(
                   key, "pinmark.seed must be a non-negative integer, got " + show(value)));
             else
               c.seed = value.get<uint64_t>();
           } else {
             r.problems.push_back(r.block.problem_at(key, "unknown pinmark key '" + key +
                                                              "' (known: seed)"));
           }
         }
       }},
  };
  return keys;
}

// Keys of a real config.json that do not change the numbers of inference.
const std::vector<std::string>& ignored_config_keys() {
  static const std::vector<std::string> keys = {
      "bos_token_id",         "eos_token_id", "pad_token_id",         "initializer_range",
      "torch_dtype",          "dtype",        "transformers_version", "use_cache",
      "attention_dropout"};
  return keys;
}

const std::vector<std::string> required_config_keys = {
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"};

}  // namespace

void read_config(const JsonBlock& block, ModelConfig& config, std::vector<CaseProblem>& problems) {
  Reader reader{block, problems};
  std::vector<std::string> known;
  for (const auto& [key, handler] : config_keys()) known.push_back(key);
  for (const auto& [key, value] : block.value.items()) {
    auto handler = config_keys().find(key);
    if (handler != config_keys().end()) {
      handler->second(reader, key, value, config);
      continue;
    }
    const auto& ignored = ignored_config_keys();
    if (std::find(ignored.begin(), ignored.end(), key) != ignored.end()) continue;
    std::string message = "unknown config key '" + key + "'";
    if (auto guess = did_you_mean(key, known)) message += " (did you mean '" + *guess + "'?)";
    problems.push_back(block.problem_at(key, message));
  }
  for (const std::string& key : required_config_keys)
    if (!block.value.contains(key))
      problems.push_back(block.problem_at("", "missing required key '" + key + "'"));
  if (!problems.empty()) return;
  for (const ConfigProblem& p : validate(config)) problems.push_back(block.problem_at(p.key, p.message));
  if (problems.empty()) config = with_defaults(config);
}

}  // namespace pinmark
