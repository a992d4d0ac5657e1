#!/usr/bin/env python3
"""A pinmark engine that runs Hugging Face transformers: any family transformers supports,
from the request's config.json and weights (the export's F64 model.safetensors, or the
checkpoint folder), loaded with `from_pretrained(..., dtype=...)`, which casts the stored
weights straight to the target's dtype.

Targets' options: {"device": "cuda" | "cpu", "attn_implementation": "eager" | "sdpa" | ...}.
Precisions: fp32 (TF32 off), tf32 (float32 storage, TF32 matmuls), bf16, fp16. The model runs
as transformers runs it in that dtype: this is what the row measures. Prefill and forced decode
call the model's forward with a DynamicCache and use_cache=True (no generate()).

Taps (the first forward call of each sequence) are taken with hooks on the Hugging Face
modules: `embed` is the first decoder layer's input (after Gemma's scaling, after GPT-2's
position embeddings), `layers.N.attn_norm` the output of `input_layernorm` (GPT-2: `ln_1`),
`layers.N.attn_out` the attention module's output (after o_proj; before the residual add and
before OLMo 2's / Gemma 2-3's post-attention norm), `layers.N.mlp_out` the MLP or MoE module's
output, `final_norm` the final norm's output, `logits` the first call's logits. Only the model
types in TAPS_CHECKED write them: those whose taps were compared with pinmark's oracle.

    python3 tools/engines/transformers_engine.py                    # pinmark's line protocol
    python3 tools/engines/transformers_engine.py --request DIR/request.json   # one request
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_protocol as ep  # noqa: E402

try:
    import torch
    import transformers
    _MISSING = None
except Exception as e:  # ImportError, or a broken install
    torch = transformers = None
    _MISSING = f"{type(e).__name__}: {e}"

# Model types whose taps were compared with pinmark's oracle's (rel L2 at fp32 rounding level,
# tools/engines/README.md); the others write logits only, never a tap that could mean
# something else than pinmark's.
TAPS_CHECKED = {
    "llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "gemma", "gemma2",
    "gemma3_text", "gpt2", "gpt_oss", "olmo2", "phi3", "deepseek_v3",
}

OPTIONS = {"device", "attn_implementation"}


def _first(obj, *names):
    for n in names:
        m = getattr(obj, n, None)
        if m is not None:
            return m
    return None


def _tensor_of(out):
    """A module's output tensor: the tensor, or the first element of a tuple / ModelOutput."""
    if isinstance(out, (tuple, list)):
        return out[0]
    if hasattr(out, "to_tuple") and not torch.is_tensor(out):
        return out.to_tuple()[0]
    return out


class TapHooks:
    """Forward hooks that keep, while `active`, what each of pinmark's taps means."""

    def __init__(self, model):
        self.active = False
        self.taps = {}
        self.handles = []
        base = _first(model, "model", "transformer")
        if base is None:
            return
        if getattr(base, "language_model", None) is not None:  # a multimodal wrapper
            base = base.language_model
        layers = _first(base, "layers", "h")
        norm = _first(base, "norm", "ln_f", "final_layernorm")
        if layers is None or norm is None:
            return
        layers = list(layers)
        if not layers:
            return

        def keep(name):
            def hook(module, args, out):
                if self.active:
                    self.taps[name] = _tensor_of(out).detach()[0].float().cpu()
            return hook

        def keep_input(module, args, kwargs):
            if self.active:
                x = args[0] if args else kwargs.get("hidden_states")
                if x is not None:
                    self.taps["embed"] = x.detach()[0].float().cpu()

        try:
            self.handles.append(layers[0].register_forward_pre_hook(keep_input, with_kwargs=True))
        except TypeError:  # torch < 2.0: positional arguments only
            self.handles.append(layers[0].register_forward_pre_hook(
                lambda m, args: keep_input(m, args, {})))
        for l, layer in enumerate(layers):
            p = f"layers.{l}."
            for tap, names in (("attn_norm", ("input_layernorm", "ln_1")),
                               ("attn_out", ("self_attn", "attn")),
                               ("mlp_out", ("mlp", "block_sparse_moe", "feed_forward"))):
                m = _first(layer, *names)
                if m is not None:
                    self.handles.append(m.register_forward_hook(keep(p + tap)))
        self.handles.append(norm.register_forward_hook(keep("final_norm")))

    def take(self):
        taps, self.taps = self.taps, {}
        return taps


def _device_text(device):
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return (f"{props.name}, compute capability {props.major}.{props.minor}, "
                f"CUDA {torch.version.cuda}", f"sm{props.major}{props.minor}")
    return f"CPU, {torch.get_num_threads()} threads", ""


def _set_matmul_mode(precision):
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def _math_mode(precision, attn, device):
    parts = [f"{attn} attention"]
    if precision in ("fp32", "tf32"):
        parts.append("fp32 weights and activations")
        if device.type == "cuda":
            parts.append("TF32 matmuls" if precision == "tf32" else "TF32 off")
    else:
        parts.append(f"{precision} weights and activations")
        if device.type == "cuda":
            reduced = (torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
                       if precision == "bf16"
                       else torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction)
            parts.append("fp32 accumulation in cuBLAS" +
                         (" (reduced-precision reductions allowed, torch's default)"
                          if reduced else ""))
    return ", ".join(parts)


def _load(request, dtype, attn):
    """The model, or raises. The config is the request's (pinmark's keys stripped); the weights
    the export's model.safetensors (beside config.json) or the checkpoint folder's."""
    from transformers import AutoConfig, AutoModelForCausalLM
    config_dir = os.path.dirname(os.path.abspath(request["config"]))
    source = request.get("checkpoint") or config_dir
    if request.get("weights") and os.path.dirname(os.path.abspath(request["weights"])) != config_dir:
        raise ValueError("the synthetic weights are not beside config.json; from_pretrained "
                         "reads them from config.json's folder")
    config = AutoConfig.from_pretrained(config_dir)
    # A config without pad_token_id gets the family's default (Phi-3: 32000), which a shrunk
    # vocabulary cannot hold: nn.Embedding refuses the padding index. It plays no part in a
    # forward pass, so it is dropped rather than the case refused.
    pad = getattr(config, "pad_token_id", None)
    if isinstance(pad, int) and not 0 <= pad < getattr(config, "vocab_size", pad + 1):
        sys.stderr.write(f"transformers_engine: pad_token_id {pad} is outside the vocabulary "
                         f"of {config.vocab_size}; set to None\n")
        config.pad_token_id = None
    kwargs = dict(config=config, attn_implementation=attn, output_loading_info=True)
    try:
        model, info = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    except TypeError as e:
        if "dtype" not in str(e):
            raise
        model, info = AutoModelForCausalLM.from_pretrained(source, torch_dtype=dtype, **kwargs)
    missing = [k for k in info.get("missing_keys", []) if "rotary" not in k]
    tied = getattr(config, "tie_word_embeddings", False)
    if tied:
        missing = [k for k in missing if not k.startswith("lm_head.")]
    mismatched = info.get("mismatched_keys", [])
    if missing or mismatched:
        raise ValueError(f"weights not loaded (would be random): missing {sorted(missing)[:8]}, "
                         f"mismatched {list(mismatched)[:8]}")
    return model


def _new_cache_factory(model):
    def new_cache():
        from transformers import DynamicCache
        try:
            return {"pkv": DynamicCache(config=model.config)}
        except TypeError:
            return {"pkv": DynamicCache()}
    return new_cache


def _softcap_dropped(request, attn):
    """transformers applies Gemma 2's attention-logit softcap in its eager attention only; sdpa
    (and flash) compute softmax(q k^T) without it, a different model (rel L2 ~8e-2 against the
    oracle in every precision on the shipped Gemma 2 case). Measured, that row would only
    restate this, so the target is answered unsupported with the reason."""
    with open(request["config"]) as f:
        cap = json.load(f).get("attn_logit_softcapping")
    if attn != "eager" and cap:
        return (f"transformers applies attn_logit_softcapping ({cap}) in eager attention only; "
                f"its {attn} attention leaves it out")
    return None


class Engine:
    def check(self):
        if _MISSING:
            raise ep.Unavailable(f"transformers or torch cannot be imported ({_MISSING})")
        try:  # no progress bar per model load in pinmark's engine log
            transformers.utils.logging.disable_progress_bar()
        except Exception:
            pass

    def check_request(self, request):
        wants_cuda = [t["name"] for t in request["targets"]
                      if str(t["options"].get("device", "cuda")).startswith("cuda")]
        if wants_cuda and not torch.cuda.is_available():
            raise ep.Unavailable(f"no CUDA device for {', '.join(wants_cuda)} "
                                 f"(torch {torch.__version__})")

    def run(self, request):
        unsupported = {}
        for target in request["targets"]:
            name, precision, options = target["name"], target["precision"], target["options"]
            unknown = set(options) - OPTIONS
            if unknown:
                unsupported[name] = f"options {sorted(unknown)} are not implemented"
                continue
            device = torch.device(options.get("device", "cuda"))
            if device.type == "cuda" and not torch.cuda.is_available():
                unsupported[name] = "no CUDA device on this machine"
                continue
            if device.type not in ("cuda", "cpu"):
                unsupported[name] = f"device {device} (cuda or cpu)"
                continue
            attn = options.get("attn_implementation", "sdpa")
            why = _softcap_dropped(request, attn)
            if why:
                unsupported[name] = why
                continue
            try:
                why = self._run_target(request, target, precision, device, attn)
            except RuntimeError as e:
                # transformers' own code refusing its mixed dtypes (DeepSeek-V4 in 5.17 keeps
                # its norms in fp32 and feeds their fp32 output to bf16/fp16 projections): the
                # model cannot run in this precision there, which is what the row says. Any
                # other runtime error stays an engine failure.
                text = str(e).strip().splitlines()[0] if str(e).strip() else ""
                if "to have the same dtype" not in text:
                    raise
                why = (f"transformers {transformers.__version__} cannot run this model in "
                       f"{precision}: RuntimeError: {text[:300]}")
            if why:
                unsupported[name] = why
        return unsupported

    def _run_target(self, request, target, precision, device, attn):
        dtype = ep.torch_dtype(precision)
        _set_matmul_mode(precision)
        try:
            model = _load(request, dtype, attn)
        except (ValueError, KeyError, ImportError, NotImplementedError) as e:
            text = str(e)
            # transformers refuses an attention implementation, a model type or a config it
            # does not know with these: the target cannot run this case.
            if isinstance(e, (KeyError, ImportError, NotImplementedError)) or any(
                    w in text for w in ("attn_implementation", "does not support", "not support",
                                        "Unrecognized", "not recognized", "model type")):
                return f"transformers: {type(e).__name__}: {text.strip().splitlines()[0][:300]}"
            raise
        model.to(device)
        model.eval()
        all_taps = os.environ.get("PINMARK_TRANSFORMERS_TAPS") == "all"  # to check new families
        checked = getattr(model.config, "model_type", None) in TAPS_CHECKED
        hooks = TapHooks(model) if all_taps or checked else None
        dev_text, dev_class = _device_text(device)
        metadata = {
            "engine": f"transformers {transformers.__version__}, torch {torch.__version__}",
            "device": dev_text,
            "device_class": dev_class,
            "math_mode": _math_mode(precision, getattr(model.config, "_attn_implementation", attn)
                                    or attn, device),
        }
        pass_positions = [True]

        def step(cache, tokens, start, want_taps):
            ids = torch.tensor([tokens], dtype=torch.long, device=device)
            positions = torch.arange(start, start + len(tokens), device=device)
            if hooks:
                hooks.active = want_taps
                hooks.taps = {}
            kwargs = dict(input_ids=ids, past_key_values=cache["pkv"], use_cache=True)
            if pass_positions[0]:
                kwargs.update(position_ids=positions[None], cache_position=positions)
            try:
                out = model(**kwargs)
            except TypeError as e:
                if not pass_positions[0] or "unexpected keyword" not in str(e):
                    raise
                pass_positions[0] = False  # a forward without cache_position / position_ids
                del kwargs["position_ids"], kwargs["cache_position"]
                out = model(**kwargs)
            finally:
                if hooks:
                    hooks.active = False
            if out.past_key_values is not None:
                cache["pkv"] = out.past_key_values
            logits = out.logits[0]
            taps = None
            if want_taps and hooks:
                taps = hooks.take()
                taps["logits"] = logits.detach().float().cpu()
            return logits, taps

        with torch.inference_mode():
            tensors = ep.run_target_outputs(step, _new_cache_factory(model), request, metadata)
        ep.write_safetensors(target["output"], tensors, metadata)
        model = None  # free the GPU memory before the next target loads
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return None


if __name__ == "__main__":
    sys.exit(ep.serve(Engine()))
