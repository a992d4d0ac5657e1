// A small GQA model shared by the model and generate tests.
#pragma once

#include "runtime/model_config.h"

namespace pinmark::test {

inline ModelConfig small_llama(bool tied = false) {
  ModelConfig c;
  c.vocab_size = 32;
  c.hidden_size = 24;
  c.intermediate_size = 40;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;  // head_dim 6
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = tied;
  c.seed = 11;
  return c;
}

}  // namespace pinmark::test
