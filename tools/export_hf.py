#!/usr/bin/env python3
"""Export tiny Hugging Face checkpoints and float64 reference logits for pinmark.

pinmark's fp64 oracle is checked against goldens that pinmark itself writes, so
a mistake shared by the oracle and the goldens would go unnoticed.  This script
builds small decoder-only checkpoints (config.json + safetensors, < 2 MB) with
random weights for each model family pinmark reads, and records the logits and
greedy continuations that Hugging Face `transformers` computes for them in
float64.  pinmark can then be compared with an implementation it did not write.

Every parameter (norm weights and biases included) is re-drawn at random, so no
tensor is trivially zero or one and a loader that skips a tensor shows up as a
logit mismatch.

Only the standard library is needed for `--self-check`; torch, transformers and
safetensors are imported inside the functions that use them.

Usage:
  python3 tools/export_hf.py --family FAMILY --out DIR [--seed N] [--prompts JSON]
                             [--shards N] [--dtype float32|float16|bfloat16]
  python3 tools/export_hf.py --model PATH_OR_ID --out DIR [--prompts JSON]
  python3 tools/export_hf.py --all --out-root DIR
  python3 tools/export_hf.py --self-check
"""

import argparse
import contextlib
import copy
import json
import math
import os
import shutil
import struct
import sys
import tempfile

MAX_CHECKPOINT_BYTES = 2 * 1024 * 1024
DEFAULT_PROMPTS = [[1, 5, 9, 3, 7, 2, 11, 4], [3, 1]]
DECODE_TOKENS = 4
STORAGE_DTYPES = ("float32", "float16", "bfloat16")

# Files this script writes into an output directory; --force removes only these.
MANAGED_SUFFIXES = (".safetensors", ".safetensors.index.json")
MANAGED_NAMES = ("config.json", "generation_config.json", "reference.json")


class ExportError(Exception):
    """A problem the user has to fix; reported without a traceback."""


# ---------------------------------------------------------------------------
# Family definitions: model_type plus config keyword arguments (transformers 5
# naming: rotary settings live in `rope_parameters`).
# ---------------------------------------------------------------------------

def _rope(theta=10000.0, **extra):
    params = {"rope_type": "default", "rope_theta": theta}
    params.update(extra)
    return params


def family_specs():
    """Return {family: {"model_type": str, "config": dict, "notes": str}}."""
    common = {
        "vocab_size": 128,
        "max_position_embeddings": 256,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }
    specs = {}

    specs["llama"] = {
        "model_type": "llama",
        "config": dict(common, hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
                       hidden_act="silu", attention_bias=False, mlp_bias=False,
                       tie_word_embeddings=False, rope_parameters=_rope()),
        "notes": "GQA 4/2, untied lm_head",
    }
    specs["llama-rope-scaling"] = {
        "model_type": "llama",
        "config": dict(specs["llama"]["config"], rope_parameters=_rope(
            500000.0, rope_type="llama3", factor=8.0, low_freq_factor=1.0,
            high_freq_factor=4.0, original_max_position_embeddings=64)),
        "notes": "llama3 rope scaling (factor 8, low 1, high 4, original 64)",
    }
    # Rope scaling past a small original context: the default prompts run a 6-token prompt
    # whose greedy decode crosses original_max_position_embeddings 8, then a 20-token prompt
    # that starts past it. That order keeps transformers' stateful dynamic_rope_update (the
    # base only grows until a sequence shorter than the original resets it) equal to
    # recomputing the frequencies from each pass's own length, as pinmark does.
    rope_prompts = [[3, 1, 4, 1, 5, 9],
                    [2, 7, 18, 28, 18, 28, 45, 90, 45, 23, 53, 60, 28, 74, 71, 35, 26, 62, 49, 77]]
    specs["llama-linear"] = {
        "model_type": "llama",
        "config": dict(specs["llama"]["config"], max_position_embeddings=32,
                       rope_parameters=_rope(10000.0, rope_type="linear", factor=4.0)),
        "prompts": rope_prompts,
        "notes": "linear rope scaling (positions divided by factor 4)",
    }
    specs["llama-llama3"] = {
        "model_type": "llama",
        "config": dict(specs["llama"]["config"], max_position_embeddings=32,
                       rope_parameters=_rope(
                           10000.0, rope_type="llama3", factor=4.0, low_freq_factor=1.0,
                           high_freq_factor=2.0, original_max_position_embeddings=8)),
        "prompts": rope_prompts,
        "notes": "llama3 rope scaling (factor 4, low 1, high 2, original 8)",
    }
    specs["llama-yarn"] = {
        "model_type": "llama",
        "config": dict(specs["llama"]["config"], max_position_embeddings=32,
                       rope_parameters=_rope(
                           10000.0, rope_type="yarn", factor=4.0,
                           original_max_position_embeddings=8, beta_fast=1.0, beta_slow=0.0625,
                           mscale=1.0, mscale_all_dim=0.5, truncate=False)),
        "prompts": rope_prompts,
        "notes": "yarn rope scaling (factor 4, original 8, ramp over pairs 0-2 untruncated, "
                 "mscale 1 / mscale_all_dim 0.5)",
    }
    specs["llama-dynamic"] = {
        "model_type": "llama",
        # dynamic NTK grows the base past max_position_embeddings, which is therefore small.
        "config": dict(specs["llama"]["config"], max_position_embeddings=8,
                       rope_parameters=_rope(10000.0, rope_type="dynamic", factor=2.0)),
        "prompts": rope_prompts,
        "cache_dependent_rope": True,
        "notes": "dynamic NTK rope scaling (factor 2, max_position_embeddings 8)",
    }
    specs["llama-longrope"] = {
        "model_type": "llama",
        "config": dict(specs["llama"]["config"], max_position_embeddings=32,
                       rope_parameters=_rope(
                           10000.0, rope_type="longrope", original_max_position_embeddings=8,
                           # Dyadic values: transformers builds the tables as float32
                           # tensors, which float64_throughout does not widen; these are
                           # exact in float32, so the reference stays float64-exact.
                           short_factor=[1.0, 1.0625, 1.125, 1.25, 1.375, 1.75, 2.0, 2.5],
                           long_factor=[1.0, 1.25, 1.75, 2.5, 3.75, 5.5, 8.0, 12.0])),
        "prompts": rope_prompts,
        "notes": "longrope (short/long factors switched past original 8; factor 32/8 gives the "
                 "attention factor)",
    }
    specs["mistral"] = {
        "model_type": "mistral",
        "config": dict(common, hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
                       hidden_act="silu", sliding_window=4,
                       tie_word_embeddings=False, rope_parameters=_rope()),
        "notes": "sliding_window 4 (query attends to itself and the 3 keys before it)",
    }
    specs["qwen2"] = {
        "model_type": "qwen2",
        "config": dict(common, hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, rms_norm_eps=1e-6,
                       hidden_act="silu", use_sliding_window=False,
                       tie_word_embeddings=True, rope_parameters=_rope(1000000.0)),
        "notes": "q/k/v biases, tied embeddings (as the small Qwen2 models)",
    }
    specs["qwen3"] = {
        "model_type": "qwen3",
        "config": dict(common, hidden_size=32, intermediate_size=96,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6,
                       hidden_act="silu", attention_bias=False,
                       use_sliding_window=False, tie_word_embeddings=False,
                       rope_parameters=_rope(1000000.0)),
        "notes": "q/k RMSNorm, head_dim 16 with hidden 32 (heads*head_dim != hidden)",
    }
    specs["gemma"] = {
        "model_type": "gemma",
        "config": dict(common, hidden_size=32, intermediate_size=96,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6,
                       hidden_act="gelu_pytorch_tanh",
                       hidden_activation="gelu_pytorch_tanh",
                       tie_word_embeddings=True, rope_parameters=_rope()),
        "notes": "RMSNorm scale (1 + w), embeddings scaled by sqrt(hidden), tied",
    }
    specs["gemma2"] = {
        "model_type": "gemma2",
        "config": dict(common, hidden_size=32, intermediate_size=96,
                       num_hidden_layers=4, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6,
                       hidden_activation="gelu_pytorch_tanh",
                       sliding_window=4, query_pre_attn_scalar=24,
                       attn_logit_softcapping=5.0, final_logit_softcapping=3.0,
                       layer_types=["sliding_attention", "full_attention"] * 2,
                       tie_word_embeddings=True, rope_parameters=_rope()),
        "notes": "4 layers alternating sliding(4)/global, softcaps 5.0/3.0, "
                 "query_pre_attn_scalar 24 (differs from head_dim)",
    }
    specs["gpt2"] = {
        "model_type": "gpt2",
        "config": {"vocab_size": 128, "n_embd": 32, "n_layer": 2, "n_head": 4,
                   "n_positions": 64, "n_inner": 128,
                   "activation_function": "gelu_new",
                   "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
                   "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
                   "tie_word_embeddings": True},
        "notes": "Conv1D weights stored [in, out], learned positions (64)",
    }
    specs["mixtral"] = {
        "model_type": "mixtral",
        "config": dict(common, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5,
                       hidden_act="silu", num_local_experts=4,
                       num_experts_per_tok=2, router_jitter_noise=0.0,
                       sliding_window=None, tie_word_embeddings=False,
                       rope_parameters=_rope(1000000.0)),
        "notes": "4 experts, top-2 routing",
        "moe": True,
    }
    specs["qwen3-moe"] = {
        "model_type": "qwen3_moe",
        # Layer 1 is dense (mlp_only_layers); the experts' own intermediate size differs from
        # the dense MLP's; top-k weights are the probabilities among all experts, unnormalised.
        "config": dict(common, hidden_size=32, intermediate_size=64, moe_intermediate_size=24,
                       num_hidden_layers=3, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-6,
                       hidden_act="silu", attention_bias=False, num_experts=4,
                       num_experts_per_tok=2, norm_topk_prob=False, decoder_sparse_step=1,
                       mlp_only_layers=[1], use_sliding_window=False, sliding_window=None,
                       tie_word_embeddings=False, rope_parameters=_rope(1000000.0)),
        "notes": "4 experts, top-2 without renormalisation, layer 1 dense, experts 24 wide",
        "moe": True,
    }
    specs["qwen3-next"] = {
        "model_type": "qwen3_next",
        # Layers 0-2 Gated DeltaNet (2 key heads over 4 value heads, a 4-tap convolution),
        # layer 3 gated attention rotating a quarter of each head; MoE with a gated shared expert.
        "config": dict(common, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                       layer_types=["linear_attention"] * 3 + ["full_attention"],
                       num_attention_heads=4, num_key_value_heads=2,
                       head_dim=16, rms_norm_eps=1e-6, hidden_act="silu", attention_bias=False,
                       linear_conv_kernel_dim=4, linear_key_head_dim=8, linear_value_head_dim=8,
                       linear_num_key_heads=2, linear_num_value_heads=4, num_experts=4,
                       num_experts_per_tok=2, moe_intermediate_size=24,
                       shared_expert_intermediate_size=32, norm_topk_prob=True,
                       decoder_sparse_step=1, mlp_only_layers=[], tie_word_embeddings=False,
                       rope_parameters=_rope(10000.0, partial_rotary_factor=0.25)),
        "notes": "3 Gated DeltaNet layers and 1 gated attention layer, 4 experts top-2 with a "
                 "shared expert",
        "moe": True,
    }
    specs["olmo2"] = {
        "model_type": "olmo2",
        "config": dict(common, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, rms_norm_eps=1e-6,
                       hidden_act="silu", attention_bias=False,
                       tie_word_embeddings=False, rope_parameters=_rope(500000.0)),
        "notes": "norms after the sublayers, q/k RMSNorm over the whole projections",
    }
    specs["gemma3"] = {
        "model_type": "gemma3_text",
        # Sliding layers with plain RoPE of base 10000, full layers with base 1e6 and linear
        # scaling 8 (Gemma 3 4B's rope); per-head q/k norms with (1 + w) weights.
        "config": dict(common, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=4, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-6,
                       hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=12,
                       sliding_window=4, attn_logit_softcapping=None,
                       final_logit_softcapping=None, tie_word_embeddings=True,
                       layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                    "sliding_attention"],
                       rope_parameters={
                           "full_attention": _rope(1000000.0, rope_type="linear", factor=8.0),
                           "sliding_attention": _rope(10000.0)}),
        "notes": "3 sliding : 1 full, local base 1e4, global base 1e6 with linear 8, q/k norms",
    }
    deepseek = dict(common, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
                    num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                    q_lora_rank=16, kv_lora_rank=8, qk_nope_head_dim=8, qk_rope_head_dim=4,
                    v_head_dim=6, n_routed_experts=8, n_shared_experts=1,
                    num_experts_per_tok=2, n_group=4, topk_group=2, first_k_dense_replace=1,
                    routed_scaling_factor=2.5, norm_topk_prob=True, rope_interleave=True,
                    rms_norm_eps=1e-6, hidden_act="silu", attention_bias=False,
                    tie_word_embeddings=False, rope_parameters=_rope(10000.0))
    specs["deepseek-v3"] = {
        "model_type": "deepseek_v3",
        # MLA with both low-rank projections and interleaved rope; DeepSeek MoE with 8 experts
        # in 4 groups, 2 groups chosen, top-2, a shared expert, layer 0 dense.
        "config": deepseek,
        "notes": "MLA (q rank 16, kv rank 8, rope 4 interleaved), 8 experts in 4 groups, "
                 "shared expert, layer 0 dense",
        "moe": True,
    }
    specs["deepseek-v3-yarn"] = {
        "model_type": "deepseek_v3",
        # DeepSeek-V3's rope: yarn with mscale = mscale_all_dim = 1, which leaves cos and sin
        # alone and multiplies the softmax scale by mscale(factor)^2.
        "config": dict(deepseek, max_position_embeddings=32,
                       rope_parameters=_rope(10000.0, rope_type="yarn", factor=4.0,
                                             original_max_position_embeddings=8,
                                             beta_fast=32.0, beta_slow=1.0, mscale=1.0,
                                             mscale_all_dim=1.0)),
        "prompts": rope_prompts,
        "notes": "yarn 4 over 8 with mscale_all_dim 1 (the softmax scale grows by 1.139^2)",
        "moe": True,
    }
    specs["deepseek-v32"] = {
        "model_type": "deepseek_v32",
        # DeepSeek-V3's MLA and MoE with DeepSeek Sparse Attention: a lightning indexer of 16
        # heads of 8 values (the first 4 rotated, half-split) keeps each query's 4 best keys, so
        # from position 4 on every query attends over 4 of its keys. 16 heads, not 4: a key
        # scores exactly 0 when relu zeroes every head (1 in 2^heads), and torch.topk breaks such
        # a tie at the 4th place its own way.
        "config": dict({k: v for k, v in deepseek.items() if k != "rope_interleave"},
                       index_topk=4, index_head_dim=8, index_n_heads=16),
        "notes": "DeepSeek-V3's shape plus the indexer: 16 heads of 8, top-4 keys per query",
        "moe": True,
    }
    specs["gpt-oss"] = {
        "model_type": "gpt_oss",
        # Attention sinks, q/k/v/o biases, sliding and full layers alternating, yarn as gpt-oss
        # ships it (untruncated, betas 32 and 1) on a small original context, and the MoE with a
        # router bias, interleaved gate/up columns, expert biases and the clamped SwiGLU.
        "config": dict(common, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5,
                       attention_bias=True, sliding_window=4,
                       layer_types=["sliding_attention", "full_attention"],
                       num_local_experts=4, num_experts_per_tok=2, swiglu_limit=7.0,
                       router_aux_loss_coef=0.9, output_router_logits=False,
                       max_position_embeddings=32, tie_word_embeddings=False,
                       rope_parameters=_rope(150000.0, rope_type="yarn", factor=4.0,
                                             original_max_position_embeddings=8,
                                             beta_fast=32.0, beta_slow=1.0, truncate=False)),
        "notes": "sinks, alternating window 4, yarn 4 over 8, 4 experts top-2 with biases",
        "moe": True,
    }
    specs["phi3"] = {
        "model_type": "phi3",
        # Fused qkv_proj and gate_up_proj; RoPE on the first half of each head (Phi-4-mini
        # rotates three quarters); a window on every layer, as Phi-3-mini-4k has.
        "config": dict(common, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, rms_norm_eps=1e-5, hidden_act="silu",
                       sliding_window=5, partial_rotary_factor=0.5,
                       original_max_position_embeddings=256, resid_pdrop=0.0, embd_pdrop=0.0,
                       tie_word_embeddings=False,
                       rope_parameters=_rope(10000.0, partial_rotary_factor=0.5)),
        "notes": "fused qkv and gate_up, partial rotary 0.5, sliding window 5",
    }
    specs["phi3-longrope"] = {
        "model_type": "phi3",
        # Phi-3-mini-128k's shape of rope: longrope tables with the original context given
        # at the top level of the config, as Phi-3 publishes it.
        "config": dict(common, hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=4, rms_norm_eps=1e-5, hidden_act="silu",
                       max_position_embeddings=32, original_max_position_embeddings=8,
                       sliding_window=None, tie_word_embeddings=False,
                       rope_parameters=_rope(
                           10000.0, rope_type="longrope", original_max_position_embeddings=8,
                           short_factor=[1.0, 1.125, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5],
                           long_factor=[1.0, 1.5, 2.0, 3.0, 4.5, 6.0, 9.0, 16.0])),
        # Both prompts start past the original context. A decode that crosses it is not used:
        # Phi3ForCausalLM.prepare_inputs_for_generation drops the cache at that step, so
        # generate() then computes neither the cached decode nor the recomputed one.
        "prompts": [[2, 7, 18, 28, 18, 28, 45, 90, 45], rope_prompts[1]],
        "cache_dependent_rope": True,
        "notes": "longrope past original 8 (Phi-3-mini-128k's rope), head_dim 16",
    }
    specs["gemma3n"] = {
        "model_type": "gemma3n_text",
        # Gemma 3n's text model with every part switched on: AltUp over 4 streams (as released),
        # LAuReL, per-layer inputs, activation sparsity on the first two layers, and the last two
        # layers reusing the keys and values of layers 0 and 1. altup_coef_clip 0.5 clamps most
        # correction coefficients (drawn with standard deviation 0.5), which transformers does
        # at inference too.
        "config": dict(common, hidden_size=32,
                       num_hidden_layers=4, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-6,
                       hidden_activation="gelu_pytorch_tanh",
                       sliding_window=4, intermediate_size=[64, 64, 48, 64],
                       layer_types=["sliding_attention", "full_attention"] * 2,
                       num_kv_shared_layers=2,
                       vocab_size_per_layer_input=128,
                       hidden_size_per_layer_input=8,
                       altup_num_inputs=4, altup_coef_clip=0.5, laurel_rank=4,
                       activation_sparsity_pattern=[0.95, 0.6, 0.0, 0.0],
                       final_logit_softcapping=3.0,
                       tie_word_embeddings=True,
                       rope_parameters={
                           "full_attention": _rope(1000000.0),
                           "sliding_attention": _rope(10000.0),
                       }),
        "notes": "Gemma3nForCausalLM: AltUp over 4 streams (coefficient clip 0.5), LAuReL rank 4, "
                 "per-layer inputs of 8, sparsity 0.95 and 0.6 on layers 0-1, per-layer MLP "
                 "widths, layers 2-3 reuse the K/V of layers 0-1",
    }
    specs["deepseek-v4"] = {
        "model_type": "deepseek_v4",
        # Every part of DeepSeek-V4 at once: hyper-connections over 4 streams (20 Sinkhorn
        # steps), a window of 4 on every layer, a sliding layer, two CSA layers (entries every 2
        # tokens over overlapping windows, a lightning indexer of 16 heads of 8 keeping 2 per
        # query: 16 heads so that no two entries tie at 0 when relu zeroes every head) and an
        # HCA layer (an entry every 4 tokens); the last 8 of each head's 16 values rotated
        # (interleaved), yarn on the compressed layers; sinks; the grouped output projection
        # (2 groups to 8); 4 experts top-2, hash-routed in the first two layers, one shared
        # expert, gates and ups clamped at 0.75 (exact in bf16 and fp16).
        "config": dict(common, hidden_size=32, moe_intermediate_size=64,
                       num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=1,
                       head_dim=16, q_lora_rank=16, partial_rotary_factor=0.5,
                       o_groups=2, o_lora_rank=8, sliding_window=4,
                       layer_types=["sliding_attention", "compressed_sparse_attention",
                                    "heavily_compressed_attention",
                                    "compressed_sparse_attention"],
                       compress_rates={"compressed_sparse_attention": 2,
                                       "heavily_compressed_attention": 4},
                       index_n_heads=16, index_head_dim=8, index_topk=2,
                       hc_mult=4, hc_sinkhorn_iters=20, hc_eps=1e-6,
                       n_routed_experts=4, num_experts_per_tok=2,
                       mlp_layer_types=["hash_moe", "hash_moe", "moe", "moe"],
                       scoring_func="sqrtsoftplus", routed_scaling_factor=1.5,
                       swiglu_limit=0.75, tie_word_embeddings=False,
                       rope_parameters={
                           "main": _rope(10000.0, partial_rotary_factor=0.5),
                           "compress": _rope(160000.0, rope_type="yarn", factor=4.0,
                                             original_max_position_embeddings=8,
                                             beta_fast=32.0, beta_slow=1.0,
                                             attention_factor=1.0, partial_rotary_factor=0.5),
                       }),
        "notes": "DeepseekV4ForCausalLM: mHC over 4 streams, window 4, sliding/CSA/HCA/CSA "
                 "layers (rates 2 and 4, indexer top-2), sinks, grouped output, 4 experts "
                 "top-2 with hash routing in layers 0-1, clamp 0.75",
        "moe": True,
    }
    return specs


FAMILIES = tuple(family_specs())


def check_spec(family, spec, prompts):
    """Sanity-check a family spec without torch. Raises ExportError."""
    cfg = spec["config"]
    problems = []
    vocab = cfg.get("vocab_size")
    hidden = cfg.get("hidden_size", cfg.get("n_embd"))
    layers = cfg.get("num_hidden_layers", cfg.get("n_layer"))
    heads = cfg.get("num_attention_heads", cfg.get("n_head"))
    kv_heads = cfg.get("num_key_value_heads", heads)
    if not (64 <= vocab <= 128):
        problems.append(f"vocab_size {vocab} outside 64..128")
    if not (32 <= hidden <= 64):
        problems.append(f"hidden size {hidden} outside 32..64")
    if heads != 4:
        problems.append(f"{heads} attention heads, expected 4")
    if heads % kv_heads:
        problems.append(f"{heads} heads not a multiple of {kv_heads} kv heads")
    head_dim = cfg.get("head_dim")
    if head_dim is None and hidden % heads:
        problems.append("hidden size not a multiple of heads and no head_dim")
    want_layers = {"gemma2": 4, "gemma3": 4, "gemma3n": 4, "qwen3-moe": 3,
                   "qwen3-next": 4,
                   "deepseek-v3": 3, "deepseek-v3-yarn": 3, "deepseek-v32": 3,
                   "deepseek-v4": 4}.get(family, 2)
    if layers != want_layers:
        problems.append(f"{layers} layers, expected {want_layers}")
    layer_types = cfg.get("layer_types")
    if layer_types is not None and len(layer_types) != layers:
        problems.append("layer_types length differs from layer count")
    inter = cfg.get("intermediate_size", cfg.get("n_inner", cfg.get("moe_intermediate_size")))
    if isinstance(inter, list):
        if len(inter) != layers:
            problems.append("intermediate_size list length differs from layer count")
        inter = max(inter)
    if not (64 <= inter <= 128):
        problems.append(f"intermediate size {inter} outside 64..128")
    window = cfg.get("sliding_window")
    if window is not None and max(len(p) for p in prompts) <= window:
        problems.append(f"no prompt is longer than sliding_window {window}")
    positions = cfg.get("max_position_embeddings", cfg.get("n_positions"))
    longest = max(len(p) for p in prompts) + DECODE_TOKENS
    # Dynamic NTK scales past max_position_embeddings; it is a threshold there, not a limit.
    if longest > positions and not spec.get("cache_dependent_rope"):
        problems.append(f"prompt + decode length {longest} exceeds {positions} positions")
    for prompt in prompts:
        for token in prompt:
            if not 0 <= token < vocab:
                problems.append(f"token id {token} not in [0, {vocab})")
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        token = cfg.get(key)
        if token is not None and not 0 <= token < vocab:
            problems.append(f"{key} {token} not in [0, {vocab})")
    rope = cfg.get("rope_parameters")
    if rope is not None:
        flat = rope.values() if "rope_type" not in rope else [rope]
        for params in flat:
            if "rope_type" not in params or "rope_theta" not in params:
                problems.append(f"rope_parameters entry lacks rope_type/rope_theta: {params}")
    if problems:
        raise ExportError(f"family {family}: " + "; ".join(problems))


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def parse_prompts(text):
    try:
        prompts = json.loads(text)
    except json.JSONDecodeError as err:
        raise ExportError(f"--prompts is not valid JSON: {err}") from None
    if not isinstance(prompts, list) or not prompts:
        raise ExportError("--prompts must be a non-empty JSON list of token lists")
    for prompt in prompts:
        if not isinstance(prompt, list) or not prompt:
            raise ExportError("--prompts: every prompt must be a non-empty list of token ids")
        for token in prompt:
            if not isinstance(token, int) or isinstance(token, bool) or token < 0:
                raise ExportError(f"--prompts: token {token!r} is not a non-negative integer")
    return prompts


def build_parser():
    parser = argparse.ArgumentParser(
        description="Export tiny Hugging Face checkpoints with float64 reference logits.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--family", choices=FAMILIES, help="model family to build")
    mode.add_argument("--model", metavar="PATH_OR_ID",
                      help="existing Hugging Face model directory (or cached id)")
    mode.add_argument("--all", action="store_true", help="export every family")
    mode.add_argument("--self-check", action="store_true",
                      help="validate argument parsing and family configs (no torch needed)")
    parser.add_argument("--out", metavar="DIR", help="output directory")
    parser.add_argument("--out-root", metavar="DIR", help="with --all: writes DIR/<family>/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompts", default=None, help="JSON list of token lists")
    parser.add_argument("--shards", type=int, default=1, help="number of safetensors shards")
    parser.add_argument("--dtype", choices=STORAGE_DTYPES, default="float32",
                        help="storage dtype of the checkpoint")
    parser.add_argument("--force", action="store_true",
                        help="replace files this script wrote earlier in the output directory")
    parser.add_argument("--stock-float64", action="store_true",
                        help="with --model: compute the reference as stock transformers does in "
                             "float64, keeping its float32 islands (RMSNorm, rotary table, "
                             "softmax, routing); reference.json says so in its dtype")
    return parser


def validate_args(args):
    """Check option combinations; returns the prompt list."""
    if args.self_check:
        return None
    if args.all:
        if not args.out_root:
            raise ExportError("--all needs --out-root DIR")
        if args.out:
            raise ExportError("--all writes DIR/<family>/; use --out-root, not --out")
    else:
        if not args.out:
            raise ExportError("--family/--model need --out DIR")
        if args.out_root:
            raise ExportError("--out-root is only for --all")
    if args.model and (args.shards != 1 or args.dtype != "float32"):
        raise ExportError("--shards/--dtype apply to generated families, not to --model")
    if args.shards < 1:
        raise ExportError("--shards must be at least 1")
    return parse_prompts(args.prompts) if args.prompts else [list(p) for p in DEFAULT_PROMPTS]


# ---------------------------------------------------------------------------
# Output directory handling and safetensors inspection (standard library only)
# ---------------------------------------------------------------------------

def is_managed(name):
    return name in MANAGED_NAMES or name.endswith(MANAGED_SUFFIXES)


def prepare_out_dir(out, force):
    if os.path.exists(out) and not os.path.isdir(out):
        raise ExportError(f"{out} exists and is not a directory")
    os.makedirs(out, exist_ok=True)
    existing = sorted(os.listdir(out))
    if not existing:
        return
    if not force:
        raise ExportError(f"{out} is not empty ({', '.join(existing)}); pass --force to replace")
    others = [name for name in existing if not is_managed(name)]
    if others:
        raise ExportError(f"{out} holds files this script did not write: {', '.join(others)}")
    for name in existing:
        os.remove(os.path.join(out, name))


def read_safetensors_header(path):
    """Return {name: (dtype, shape)} from a .safetensors file header."""
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise ExportError(f"{path}: too short for a safetensors header")
        (length,) = struct.unpack("<Q", raw)
        if length > 100 * 1024 * 1024:
            raise ExportError(f"{path}: implausible header length {length}")
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return {name: (info["dtype"], tuple(info["shape"])) for name, info in header.items()}


def checkpoint_files(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".safetensors"))


def describe_checkpoint(directory):
    """Return (total_bytes, shard_names, {tensor: (dtype, shape, shard)})."""
    shards = checkpoint_files(directory)
    if not shards:
        raise ExportError(f"{directory}: no .safetensors files")
    tensors = {}
    for shard in shards:
        for name, (dtype, shape) in read_safetensors_header(os.path.join(directory, shard)).items():
            if name in tensors:
                raise ExportError(f"{directory}: tensor {name} appears in two shards")
            tensors[name] = (dtype, shape, shard)
    index_path = os.path.join(directory, "model.safetensors.index.json")
    if len(shards) > 1:
        if not os.path.exists(index_path):
            raise ExportError(f"{directory}: {len(shards)} shards but no model.safetensors.index.json")
        with open(index_path) as handle:
            weight_map = json.load(handle)["weight_map"]
        for name, (_, _, shard) in tensors.items():
            if weight_map.get(name) != shard:
                raise ExportError(f"{index_path}: {name} maps to {weight_map.get(name)}, found in {shard}")
        if set(weight_map) != set(tensors):
            raise ExportError(f"{index_path}: weight_map names differ from the shard contents")
    total = sum(os.path.getsize(os.path.join(directory, name))
                for name in os.listdir(directory)
                if name.endswith(".safetensors") or name.endswith(".json") and name != "reference.json")
    return total, shards, tensors


def print_checkpoint(directory, label):
    total, shards, tensors = describe_checkpoint(directory)
    print(f"== {label}")
    print(f"directory: {directory}")
    print(f"total bytes: {total} (config + safetensors)")
    print(f"shards: {len(shards)}")
    for name in sorted(tensors):
        dtype, shape, _ = tensors[name]
        print(f"  {name} {list(shape)} {dtype}")


# ---------------------------------------------------------------------------
# torch / transformers parts
# ---------------------------------------------------------------------------

def import_backends():
    try:
        import torch
        import transformers
    except ImportError as err:
        raise ExportError(f"torch and transformers are required for exporting: {err}") from None
    transformers.utils.logging.disable_progress_bar()
    major = int(transformers.__version__.split(".")[0])
    if major < 5:
        raise ExportError(f"transformers {transformers.__version__} found; this script "
                          "targets transformers 5 (rope_parameters, dtype= keyword)")
    return torch, transformers


def make_config(transformers, spec):
    from transformers import AutoConfig
    try:
        # A copy: a config class may rewrite the dicts it is given (DeepSeek-V4 validates its
        # nested rope_parameters in place), and the comparison below needs the spec as written.
        config = AutoConfig.for_model(spec["model_type"], **copy.deepcopy(spec["config"]))
    except (ValueError, TypeError, KeyError) as err:
        raise ExportError(f"cannot build {spec['model_type']} config: {err}") from None
    # Read back what matters, so that a renamed or ignored key fails loudly.
    for key, value in spec["config"].items():
        if key in ("rope_parameters", "hidden_act", "hidden_activation"):
            continue
        got = getattr(config, key, "<missing>")
        if isinstance(got, tuple):
            got = list(got)
        if got != value:
            raise ExportError(f"{spec['model_type']} config: {key} is {got!r}, wanted {value!r}")
    wanted_rope = spec["config"].get("rope_parameters")
    if wanted_rope is not None:
        got_rope = getattr(config, "rope_parameters", None)
        if not isinstance(got_rope, dict):
            raise ExportError(f"{spec['model_type']} config has no rope_parameters dict")
        flat_want = {"": wanted_rope} if "rope_type" in wanted_rope else wanted_rope
        flat_got = {"": got_rope} if "rope_type" in got_rope else got_rope
        for kind, params in flat_want.items():
            for key, value in params.items():
                if flat_got.get(kind, {}).get(key) != value:
                    raise ExportError(f"{spec['model_type']} config: rope_parameters{[kind] if kind else ''}"
                                      f"[{key}] is {flat_got.get(kind, {}).get(key)!r}, wanted {value!r}")
    config.use_cache = True
    return config


def randomize_parameters(torch, model, seed):
    """Re-draw every parameter so that none is trivially zero or one.

    Matrices: normal(0, 1/sqrt(fan_in)).  One-dimensional parameters keep the
    constant they were initialised to (1 for plain norms, 0 for biases and for
    norms applied as 1 + w) plus 0.1 * randn; gpt-oss's attention sinks, logits
    that compete with the scores, are drawn normal(0, 1).
    """
    generator = torch.Generator().manual_seed(seed + 1)
    transposed = set()  # GPT-2 style Conv1D stores weights as [in, out]
    for module_name, module in model.named_modules():
        if type(module).__name__ == "Conv1D":
            transposed.add(f"{module_name}.weight" if module_name else "weight")
    with torch.no_grad():
        for name, param in model.named_parameters():
            shape = tuple(param.shape)
            if name.endswith("self_attn.sinks"):
                noise = torch.randn(shape, generator=generator, dtype=torch.float64)
                param.copy_(noise.to(param.dtype))
            elif name.endswith("linear_attn.A_log"):
                # Qwen3-Next draws A_log = log(uniform(0, 16)) at init; log(uniform(1, 4)) keeps
                # the per-token decay exp(-exp(A_log) softplus(a + dt_bias)) away from 0 and 1.
                u = torch.rand(shape, generator=generator, dtype=torch.float64)
                param.copy_(torch.log(1.0 + 3.0 * u).to(param.dtype))
            elif param.dim() == 1 and name.endswith(".bias"):
                # A bias is centred on 0 whatever its init (gpt-oss draws its router's).
                noise = torch.randn(shape, generator=generator, dtype=torch.float64)
                param.copy_((0.1 * noise).to(param.dtype))
            elif param.dim() == 0 or param.dim() == 1:
                base = param.detach().reshape(-1)
                if base.numel() and not bool((base == base[0]).all()):
                    raise ExportError(f"{name}: 1-D parameter is not constant after init; "
                                      "cannot tell its neutral value")
                center = float(base[0]) if base.numel() else 0.0
                if center not in (0.0, 1.0):
                    raise ExportError(f"{name}: unexpected initial value {center}")
                noise = torch.randn(shape, generator=generator, dtype=torch.float64)
                param.copy_((center + 0.1 * noise).to(param.dtype))
            else:
                fan_in = shape[0] if name in transposed else shape[-1]
                noise = torch.randn(shape, generator=generator, dtype=torch.float64)
                param.copy_((noise / math.sqrt(fan_in)).to(param.dtype))
    # DeepSeek's router correction bias is a buffer the checkpoint stores; zero would hide
    # whether an engine applies it, so it is drawn like a bias. DeepSeek-V4's hash routers'
    # tid2eid (zeros at init: every token to expert 0, top_k times) gets distinct random experts
    # for each token, as a real table has.
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                noise = torch.randn(tuple(buffer.shape), generator=generator, dtype=torch.float64)
                buffer.copy_((0.1 * noise).to(buffer.dtype))
            elif name.endswith("tid2eid"):
                rows, top_k = tuple(buffer.shape)
                experts = model.config.get_text_config().num_local_experts
                for row in range(rows):
                    order = torch.randperm(experts, generator=generator)[:top_k]
                    buffer[row].copy_(order.to(buffer.dtype))
    for name, param in model.named_parameters():
        flat = param.detach().reshape(-1)
        if flat.numel() > 1 and bool((flat == flat[0]).all()):
            raise ExportError(f"{name} is still constant after randomisation")
    # Saved tensors that are neither parameters nor views of one (tied weights are).
    param_ptrs = {p.data_ptr() for p in model.parameters()}
    float_buffers = [n for n, t in model.state_dict().items()
                     if t.is_floating_point() and t.data_ptr() not in param_ptrs
                     and not n.endswith("e_score_correction_bias")]
    if float_buffers:
        print(f"note: floating-point buffers saved unchanged: {', '.join(sorted(float_buffers))}",
              file=sys.stderr)


def save_kwargs(model, max_shard_size):
    import inspect
    params = inspect.signature(model.save_pretrained).parameters
    kwargs = {}
    if "safe_serialization" in params:
        kwargs["safe_serialization"] = True
    if max_shard_size is not None:
        kwargs["max_shard_size"] = max_shard_size
    return kwargs


def save_with_shards(torch, model, out, shards):
    """Save so that exactly `shards` safetensors files are written."""
    sizes = [p.numel() * p.element_size() for p in model.state_dict().values()]
    total = sum(sizes)
    if total > MAX_CHECKPOINT_BYTES:
        raise ExportError(f"weights take {total} bytes, over the {MAX_CHECKPOINT_BYTES}-byte limit")
    if shards > len(sizes):
        raise ExportError(f"--shards {shards} exceeds the number of tensors ({len(sizes)})")

    def attempt(limit):
        scratch = tempfile.mkdtemp(prefix="export_hf_", dir=os.path.dirname(os.path.abspath(out)))
        try:
            model.save_pretrained(scratch, **save_kwargs(model, limit))
            return scratch, len(checkpoint_files(scratch))
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise

    if shards == 1:
        scratch, count = attempt(None)
    else:
        # Shard count falls as the limit grows: find the smallest limit giving <= shards.
        low, high = max(sizes), total
        while low < high:
            mid = (low + high) // 2
            scratch, count = attempt(mid)
            shutil.rmtree(scratch)
            if count <= shards:
                high = mid
            else:
                low = mid + 1
        scratch, count = attempt(low)
    try:
        if count != shards:
            raise ExportError(f"could not split the checkpoint into {shards} shards "
                              f"(max_shard_size {low if shards > 1 else 'default'} gives {count})")
        for name in os.listdir(scratch):
            shutil.move(os.path.join(scratch, name), os.path.join(out, name))
            os.chmod(os.path.join(out, name), 0o644)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def is_moe(config):
    text = config.get_text_config()
    return any(getattr(text, key, None) for key in ("num_local_experts", "num_experts"))


def implementation_kwargs(config):
    """Eager attention; for mixture-of-experts models also the per-expert loop
    (the default grouped_mm experts kernel does not accept float64)."""
    kwargs = {"attn_implementation": "eager"}
    if is_moe(config):
        kwargs["experts_implementation"] = "eager"
    return kwargs


def check_implementations(model, label):
    impl = getattr(model.config, "_attn_implementation", None)
    if impl != "eager":
        raise ExportError(f"{label}: attention implementation is {impl!r}, not 'eager'")
    if is_moe(model.config):
        impl = getattr(model.config, "_experts_implementation", None)
        if impl != "eager":
            raise ExportError(f"{label}: experts implementation is {impl!r}, not 'eager'")


@contextlib.contextmanager
def float64_throughout(torch):
    """Runs transformers' float32 islands in float64.

    For the sake of fp16/bf16 models, transformers computes RMSNorm, the rotary tables, eager
    attention's softmax and MoE routing in float32, whatever the model's dtype. In a float64
    model those are downcasts, worth 1e-7 of relative error, which would swamp the comparison
    with pinmark's fp64 oracle. Inside this block float32 means float64 for Tensor.to,
    Tensor.float, Tensor.type, torch.arange, torch.tensor and the softmaxes' dtype argument,
    so the reference is each model's own code, operation for operation, carried out in float64.
    """
    # torch's device context (the meta device transformers builds models on) redirects the
    # factories it lists on first use; listing them now, before arange is wrapped, keeps the
    # real arange on that list. Listed later, a wrapped arange escapes the context and builds
    # on the CPU, which longrope's tables then mix with meta tensors.
    from torch.utils._device import _device_constructors
    _device_constructors()
    tensor = torch.Tensor
    functional = torch.nn.functional
    saved = (tensor.to, tensor.float, tensor.softmax, torch.softmax, functional.softmax,
             tensor.type)
    (original_to, _, original_tensor_softmax, original_torch_softmax, original_functional_softmax,
     original_type) = saved

    def widen(value):
        return torch.float64 if value is torch.float32 else value

    def to(self, *args, **kwargs):
        args = tuple(widen(a) for a in args)
        if "dtype" in kwargs:
            kwargs["dtype"] = widen(kwargs["dtype"])
        return original_to(self, *args, **kwargs)

    def to_float(self, *args, **kwargs):
        return original_to(self, torch.float64)

    # DeepSeek's router casts with .type(torch.float32).
    def to_type(self, dtype=None, *args, **kwargs):
        if dtype is None:
            return original_type(self, *args, **kwargs)
        if dtype is torch.float32 or dtype in ("torch.FloatTensor", "torch.float32"):
            dtype = torch.float64
        return original_type(self, dtype, *args, **kwargs)

    def tensor_softmax(self, *args, dtype=None, **kwargs):
        return original_tensor_softmax(self, *args, dtype=widen(dtype), **kwargs)

    def torch_softmax(input, *args, dtype=None, **kwargs):
        return original_torch_softmax(input, *args, dtype=widen(dtype), **kwargs)

    def functional_softmax(input, dim=None, _stacklevel=3, dtype=None):
        return original_functional_softmax(input, dim=dim, _stacklevel=_stacklevel, dtype=widen(dtype))

    # The rotary inv_freq is built from torch.arange(..., dtype=torch.float), Gemma 3n's
    # activation sparsity from torch.tensor(p, dtype=torch.float32) (whose normal quantile
    # erfinv then computes in float32). Only these are widened: masks are built by other
    # factories from float32's own extremes, which must stay as they are.
    factories = ("arange", "tensor")
    saved_factories = {name: getattr(torch, name) for name in factories}

    def widening(factory):
        def call(*args, **kwargs):
            if "dtype" in kwargs:
                kwargs["dtype"] = widen(kwargs["dtype"])
            return factory(*args, **kwargs)
        return call

    tensor.to, tensor.float, tensor.softmax, tensor.type = to, to_float, tensor_softmax, to_type
    torch.softmax, functional.softmax = torch_softmax, functional_softmax
    for name, factory in saved_factories.items():
        setattr(torch, name, widening(factory))
    # Arithmetic that promotes an integer tensor to floating point gives the default dtype:
    # dynamic NTK's `factor * seq_len / max_position_embeddings`, with seq_len an int64 tensor,
    # would otherwise be float32.
    saved_default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(saved_default)
        (tensor.to, tensor.float, tensor.softmax, torch.softmax, functional.softmax,
         tensor.type) = saved
        for name, factory in saved_factories.items():
            setattr(torch, name, factory)


def load_float64(torch, directory, local_only):
    from transformers import AutoConfig, AutoModelForCausalLM
    try:
        config = AutoConfig.from_pretrained(directory, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(
            directory, dtype=torch.float64, local_files_only=local_only,
            **implementation_kwargs(config))
    except (OSError, ValueError) as err:
        raise ExportError(f"cannot load {directory}: {err}") from None
    model.to("cpu")
    model.eval()
    wrong = [n for n, p in model.named_parameters() if p.dtype != torch.float64]
    if wrong:
        raise ExportError(f"{directory}: parameters not float64 after loading: {', '.join(wrong[:5])}")
    check_implementations(model, directory)
    return model


def compute_references(torch, transformers, model, prompts, family, cache_dependent=False):
    """cache_dependent: the rotary frequencies depend on the length seen so far (dynamic NTK), so
    a cached decode and a full recomputation are different functions; a difference between
    their greedy tokens is reported, not an error. The reference keeps the cached decode."""
    from transformers import GenerationConfig
    vocab = model.config.get_text_config().vocab_size
    for prompt in prompts:
        bad = [t for t in prompt if t >= vocab]
        if bad:
            raise ExportError(f"prompt tokens {bad} are not below vocab_size {vocab}")
    # Let greedy decoding run all DECODE_TOKENS steps: no end-of-sequence stop.
    model.generation_config.eos_token_id = None
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = 0
    generation = GenerationConfig(do_sample=False, max_new_tokens=DECODE_TOKENS, min_new_tokens=0,
                                  use_cache=True, eos_token_id=None,
                                  pad_token_id=model.generation_config.pad_token_id,
                                  num_beams=1)
    all_logits, greedy = [], []
    with torch.no_grad():
        for prompt in prompts:
            ids = torch.tensor([prompt], dtype=torch.long)
            mask = torch.ones_like(ids)
            out = model(input_ids=ids, attention_mask=mask, use_cache=False)
            logits = out.logits
            if logits.dtype != torch.float64 or tuple(logits.shape) != (1, len(prompt), vocab):
                raise ExportError(f"unexpected logits {logits.dtype} {tuple(logits.shape)}")
            if not bool(torch.isfinite(logits).all()):
                raise ExportError("logits contain NaN or infinity")
            all_logits.append(logits[0].tolist())

            generated = model.generate(input_ids=ids, attention_mask=mask,
                                       generation_config=generation)
            new = generated[0, len(prompt):].tolist()
            if len(new) != DECODE_TOKENS:
                raise ExportError(f"generate returned {len(new)} new tokens, wanted {DECODE_TOKENS}")
            # Cross-check the cached decode against full recomputation.
            sequence = list(prompt)
            for _ in range(DECODE_TOKENS):
                step = model(input_ids=torch.tensor([sequence]), use_cache=False).logits
                sequence.append(int(step[0, -1].argmax()))
            if sequence[len(prompt):] != new and cache_dependent:
                print(f"note: {family}: cached greedy decode {new} differs from recomputed "
                      f"{sequence[len(prompt):]} (dynamic rope: expected to be possible)")
            elif sequence[len(prompt):] != new:
                raise ExportError(f"{family}: cached greedy decode {new} differs from "
                                  f"recomputed {sequence[len(prompt):]}")
            greedy.append(new)
    return all_logits, greedy


def unused_parameters(torch, model, prompts):
    """Names of parameters whose perturbation leaves every logit unchanged.

    transformers itself ignores such tensors for these prompts (for example the
    K/V projections of layers that reuse another layer's cache, or experts no
    token is routed to), so pinmark cannot be expected to show that it uses them.
    """
    def run_all():
        with torch.no_grad():
            return [model(input_ids=torch.tensor([p]), use_cache=False).logits.clone() for p in prompts]

    baseline = run_all()
    unused = []
    for name, param in model.named_parameters():
        saved = param.detach().clone()
        with torch.no_grad():
            param.add_(0.01 * (1.0 + saved.abs()))
        changed = any(not torch.equal(a, b) for a, b in zip(baseline, run_all()))
        with torch.no_grad():
            param.copy_(saved)
        if not changed:
            unused.append(name)
    return unused


def write_reference(torch, transformers, out, family, prompts, logits, greedy, stock=False):
    # pinmark bounds the reference by how it was computed (docs/numerics.md, "The Reference
    # section"): "float64" alone means stock transformers, float32 islands included.
    how = "float64 with its float32 islands" if stock else "float64 throughout"
    reference = {
        "generator": f"transformers {transformers.__version__}, torch {torch.__version__}, {how}",
        "dtype": "float64" if stock else "float64, float32 islands widened to float64",
        "family": family,
        "prompts": prompts,
        "logits": logits,
        "greedy": greedy,
    }
    path = os.path.join(out, "reference.json")
    with open(path, "w") as handle:
        json.dump(reference, handle, allow_nan=False)
        handle.write("\n")
    return path


def setup_determinism(torch, seed):
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


def export_family(family, out, seed, prompts, shards, dtype_name, force):
    """prompts None: the family's own prompts, or DEFAULT_PROMPTS."""
    spec = family_specs()[family]
    if prompts is None:
        prompts = [list(p) for p in spec.get("prompts", DEFAULT_PROMPTS)]
    check_spec(family, spec, prompts)
    torch, transformers = import_backends()
    from transformers import AutoModelForCausalLM
    setup_determinism(torch, seed)
    prepare_out_dir(out, force)

    config = make_config(transformers, spec)
    model = AutoModelForCausalLM.from_config(config, **implementation_kwargs(config))
    check_implementations(model, family)
    model.to(torch.float32)
    randomize_parameters(torch, model, seed)
    model.to(getattr(torch, dtype_name))
    save_with_shards(torch, model, out, shards)

    total, shard_names, _ = describe_checkpoint(out)
    if total > MAX_CHECKPOINT_BYTES:
        for name in os.listdir(out):
            if is_managed(name):
                os.remove(os.path.join(out, name))
        raise ExportError(f"{family}: checkpoint is {total} bytes, over {MAX_CHECKPOINT_BYTES}; removed")

    setup_determinism(torch, seed)
    with float64_throughout(torch):
        reloaded = load_float64(torch, out, local_only=True)
        logits, greedy = compute_references(torch, transformers, reloaded, prompts, family,
                                            spec.get("cache_dependent_rope", False))
        write_reference(torch, transformers, out, family, prompts, logits, greedy)
        print_checkpoint(out, f"{family} ({spec['notes']}; stored {dtype_name})")
        print(f"greedy: {greedy}")
        report_unused(torch, reloaded, prompts)


def report_unused(torch, model, prompts):
    unused = unused_parameters(torch, model, prompts)
    if unused:
        print("parameters transformers does not use for these prompts (model names):")
        for name in unused:
            print(f"  {name}")
    else:
        print("every parameter affects the logits")


def export_model(model_path, out, seed, prompts, force, stock=False):
    torch, transformers = import_backends()
    setup_determinism(torch, seed)
    local = os.path.isdir(model_path)
    prepare_out_dir(out, force)
    with contextlib.nullcontext() if stock else float64_throughout(torch):
        model = load_float64(torch, model_path, local_only=local)
        family = model.config.model_type
        logits, greedy = compute_references(torch, transformers, model, prompts, family)
        path = write_reference(torch, transformers, out, family, prompts, logits, greedy, stock)
    if local:
        print_checkpoint(model_path, f"{model_path} ({family})")
    print(f"reference: {path}")
    print(f"greedy: {greedy}")
    if small_enough_for_usage_check(model):
        report_unused(torch, model, prompts)


# ---------------------------------------------------------------------------
# Self-check (no torch)
# ---------------------------------------------------------------------------

def self_check():
    parser = build_parser()

    def parse(argv):
        args = parser.parse_args(argv)
        return args, validate_args(args)

    def expect_error(argv, fragment):
        try:
            parse(argv)
        except ExportError as err:
            if fragment not in str(err):
                raise AssertionError(f"{argv}: error {err!r} lacks {fragment!r}")
            return
        except SystemExit:
            if fragment != "<usage>":
                raise AssertionError(f"{argv}: argparse rejected it, expected {fragment!r}")
            return
        raise AssertionError(f"{argv}: accepted, expected an error containing {fragment!r}")

    args, prompts = parse(["--family", "llama", "--out", "x"])
    assert prompts == DEFAULT_PROMPTS and args.seed == 0 and args.shards == 1
    assert args.dtype == "float32"
    args, prompts = parse(["--family", "gemma2", "--out", "x", "--seed", "7",
                           "--prompts", "[[1,2,3],[4,5]]", "--shards", "3", "--dtype", "bfloat16"])
    assert prompts == [[1, 2, 3], [4, 5]] and args.seed == 7 and args.shards == 3
    args, _ = parse(["--all", "--out-root", "r"])
    assert args.all and args.out_root == "r"
    args, _ = parse(["--model", "some/dir", "--out", "x"])
    assert args.model == "some/dir"
    with open(os.devnull, "w") as devnull:
        saved = sys.stderr
        sys.stderr = devnull
        try:
            expect_error(["--family", "nope", "--out", "x"], "<usage>")
            expect_error(["--family", "llama", "--model", "m", "--out", "x"], "<usage>")
            expect_error(["--out", "x"], "<usage>")
            expect_error(["--family", "llama", "--dtype", "float64", "--out", "x"], "<usage>")
        finally:
            sys.stderr = saved
    expect_error(["--family", "llama"], "--out DIR")
    expect_error(["--all"], "--out-root")
    expect_error(["--all", "--out-root", "r", "--out", "x"], "--out-root")
    expect_error(["--family", "llama", "--out", "x", "--out-root", "r"], "only for --all")
    expect_error(["--family", "llama", "--out", "x", "--shards", "0"], "at least 1")
    expect_error(["--model", "m", "--out", "x", "--dtype", "float16"], "not to --model")
    expect_error(["--family", "llama", "--out", "x", "--prompts", "[[1,2"], "not valid JSON")
    expect_error(["--family", "llama", "--out", "x", "--prompts", "[]"], "non-empty")
    expect_error(["--family", "llama", "--out", "x", "--prompts", "[[]]"], "non-empty")
    expect_error(["--family", "llama", "--out", "x", "--prompts", "[[1,-2]]"], "non-negative")
    expect_error(["--family", "llama", "--out", "x", "--prompts", "[[1,2.5]]"], "non-negative")
    expect_error(["--family", "llama", "--out", "x", "--prompts", "[[true]]"], "non-negative")

    specs = family_specs()
    assert set(FAMILIES) >= {"llama", "llama-rope-scaling", "mistral", "qwen2", "qwen3", "gemma",
                             "gemma2", "gpt2", "mixtral", "gemma3n"}
    for family, spec in specs.items():
        check_spec(family, spec, spec.get("prompts", DEFAULT_PROMPTS))
        json.dumps(spec["config"])  # configs must be JSON-serialisable
        print(f"ok  {family:20s} {spec['model_type']:14s} {spec['notes']}")
    try:
        check_spec("llama", specs["llama"], [[1, 500]])
        raise AssertionError("token id 500 accepted for vocab 128")
    except ExportError as err:
        assert "token id 500" in str(err)
    try:
        check_spec("mistral", specs["mistral"], [[1, 2, 3]])
        raise AssertionError("prompts shorter than the sliding window accepted")
    except ExportError as err:
        assert "sliding_window" in str(err)
    rope = specs["llama-rope-scaling"]["config"]["rope_parameters"]
    assert rope["rope_type"] == "llama3" and rope["factor"] == 8.0
    assert rope["original_max_position_embeddings"] == 64
    # The rope-scaling presets: prompts that cross original_max_position_embeddings (8) while
    # decoding and one that starts past it; longrope's tables have head_dim / 2 entries.
    for family, kind in (("llama-llama3", "llama3"), ("llama-yarn", "yarn"),
                         ("llama-dynamic", "dynamic"), ("llama-longrope", "longrope")):
        cfg = specs[family]["config"]
        rope = cfg["rope_parameters"]
        assert rope["rope_type"] == kind, family
        threshold = (cfg["max_position_embeddings"] if kind == "dynamic"
                     else rope["original_max_position_embeddings"])
        assert threshold == 8, family
        lengths = [len(p) for p in specs[family]["prompts"]]
        assert lengths[0] <= threshold < lengths[0] + DECODE_TOKENS, family
        assert lengths[-1] > threshold, family
        if kind == "longrope":
            for table in ("short_factor", "long_factor"):
                assert len(rope[table]) == cfg["head_dim"] // 2, (family, table)
                for value in rope[table]:
                    assert struct.unpack("<f", struct.pack("<f", value))[0] == value, value
    linear = specs["llama-linear"]
    assert linear["config"]["rope_parameters"]["rope_type"] == "linear"
    assert linear["prompts"] == specs["llama-yarn"]["prompts"]
    try:
        check_spec("llama", specs["llama"], [list(range(1, 100)) * 3])
        raise AssertionError("a prompt longer than max_position_embeddings accepted")
    except ExportError as err:
        assert "exceeds" in str(err)
    check_spec("llama-dynamic", specs["llama-dynamic"], [list(range(1, 30))])
    gemma2 = specs["gemma2"]["config"]
    assert gemma2["layer_types"][0] != gemma2["layer_types"][1]
    assert gemma2["attn_logit_softcapping"] and gemma2["final_logit_softcapping"]

    # Parameter counts stay far below the size limit even in float32.
    for family, spec in specs.items():
        estimate = estimate_parameters(spec) * 4
        assert estimate < MAX_CHECKPOINT_BYTES, f"{family}: ~{estimate} bytes"

    # Output directory handling and the safetensors header reader.
    with tempfile.TemporaryDirectory() as root:
        out = os.path.join(root, "o")
        prepare_out_dir(out, force=False)
        header = {"a.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                  "__metadata__": {"format": "pt"}}
        blob = json.dumps(header).encode()
        with open(os.path.join(out, "model.safetensors"), "wb") as handle:
            handle.write(struct.pack("<Q", len(blob)) + blob + bytes(24))
        total, shards, tensors = describe_checkpoint(out)
        assert shards == ["model.safetensors"] and tensors["a.weight"][:2] == ("F32", (2, 3))
        assert total == 8 + len(blob) + 24
        try:
            prepare_out_dir(out, force=False)
            raise AssertionError("non-empty directory accepted without --force")
        except ExportError:
            pass
        open(os.path.join(out, "notes.txt"), "w").close()
        try:
            prepare_out_dir(out, force=True)
            raise AssertionError("--force would have removed a foreign file")
        except ExportError as err:
            assert "notes.txt" in str(err)
        os.remove(os.path.join(out, "notes.txt"))
        prepare_out_dir(out, force=True)
        assert os.listdir(out) == []
    print("self-check passed")


def estimate_parameters(spec):
    cfg = spec["config"]
    hidden = cfg.get("hidden_size", cfg.get("n_embd"))
    layers = cfg.get("num_hidden_layers", cfg.get("n_layer"))
    heads = cfg.get("num_attention_heads", cfg.get("n_head"))
    kv_heads = cfg.get("num_key_value_heads", heads)
    head_dim = cfg.get("head_dim") or hidden // heads
    inter = cfg.get("intermediate_size", cfg.get("n_inner", cfg.get("moe_intermediate_size")))
    inter = max(inter) if isinstance(inter, list) else inter
    experts = cfg.get("num_local_experts", cfg.get("n_routed_experts", 1))
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
    mlp = 3 * hidden * inter * experts
    embeddings = cfg["vocab_size"] * hidden * 2 + cfg.get("vocab_size_per_layer_input", 0) * layers * \
        cfg.get("hidden_size_per_layer_input", 0)
    return layers * (attention + mlp) + embeddings


def small_enough_for_usage_check(model):
    # The perturbation check runs the model once per parameter: only for small models.
    return sum(p.numel() for p in model.parameters()) <= 10_000_000


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        prompts = validate_args(args)
        if args.self_check:
            self_check()
        elif args.family:
            export_family(args.family, args.out, args.seed, prompts if args.prompts else None,
                          args.shards, args.dtype, args.force)
        elif args.model:
            export_model(args.model, args.out, args.seed, prompts, args.force, args.stock_float64)
        else:
            failed = []
            for family in FAMILIES:
                try:
                    export_family(family, os.path.join(args.out_root, family), args.seed,
                                  prompts if args.prompts else None, args.shards, args.dtype,
                                  args.force)
                except ExportError as err:
                    print(f"error: {err}", file=sys.stderr)
                    failed.append(family)
                print()
            if failed:
                raise ExportError(f"failed families: {', '.join(failed)}")
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
