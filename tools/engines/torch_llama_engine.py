#!/usr/bin/env python3
"""A pinmark engine that is neither pinmark nor transformers: a small PyTorch forward of the
Llama family (llama; mistral with its sliding window; qwen2 with its q/k/v biases and its
window from max_window_layers on), written from the equations, with its own KV cache. It reads
config.json and the weights by their Hugging Face names, and runs on the CPU with one thread
(deterministic), in fp32 or bf16.

Targets' options: {"device": "cpu"} (the only device). Precisions: fp32; bf16 (weights rounded
once to bfloat16, every op's output bfloat16: matmuls through torch's CPU bf16 GEMM, which
accumulates in fp32; RMSNorm, RoPE, softmax and SwiGLU computed in fp32 and rounded once;
attention scores kept in fp32, as a fused attention kernel keeps them). A model type, config
key or option this forward does not implement is answered `unsupported`, naming it.

    python3 tools/engines/torch_llama_engine.py                   # pinmark's line protocol
    python3 tools/engines/torch_llama_engine.py --request DIR/request.json   # one request
"""

import os
import sys


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# The same numbers on every x86 machine: torch picks its CPU kernels by the instruction set
# (AVX2, AVX-512), and they sum in vectors of its width; with AVX-512, bf16 products go through
# oneDNN instead of torch's own loops. A row measured with AVX-512 then differs from one
# measured with AVX2 under the same label (seen on Debian's torch 1.13: two bf16 rows whose
# largest error crossed a rounding step). So the kernels compiled for no particular extension
# (read before torch starts), no oneDNN (in Engine.run), MKL in its reproducible mode, and
# OpenBLAS on its Haswell kernels wherever the CPU runs them.
os.environ["ATEN_CPU_CAPABILITY"] = "default"
os.environ["MKL_CBWR"] = "COMPATIBLE"
if {"avx2", "fma"} <= _cpu_flags():
    os.environ["OPENBLAS_CORETYPE"] = "Haswell"

try:
    import torch
except ImportError:
    # The `python3` first in PATH may be another interpreter (pyenv, a virtualenv) without
    # torch, while Debian's python3-torch is installed for /usr/bin/python3: run this script
    # again under that one (once; the variable stops a loop). The protocol's pipes are kept.
    system = "/usr/bin/python3"
    if (os.path.exists(system) and not os.environ.get("PINMARK_ENGINE_REEXEC")
            and os.path.realpath(sys.executable) != os.path.realpath(system)):
        os.environ["PINMARK_ENGINE_REEXEC"] = "1"
        os.execv(system, [system, os.path.abspath(__file__)] + sys.argv[1:])
    torch = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_protocol as ep  # noqa: E402

ENGINE_VERSION = "1"

# Keys that change nothing in a forward pass (or are checked for their one supported value
# below); any other key is answered `unsupported`.
INERT_KEYS = {
    "architectures", "model_type", "transformers_version", "dtype", "torch_dtype",
    "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range", "use_cache",
    "attention_dropout", "max_position_embeddings", "_name_or_path", "output_attentions",
    "output_hidden_states", "return_dict", "tie_word_embeddings", "vocab_size", "hidden_size",
    "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "head_dim", "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters", "hidden_act",
    "attention_bias", "mlp_bias", "pretraining_tp", "layer_types",
}
FAMILY_KEYS = {
    "llama": set(),
    "mistral": {"sliding_window"},
    "qwen2": {"sliding_window", "use_sliding_window", "max_window_layers"},
}


BLAS_KINDS = (("openblas", "openblas"), ("/blas/libblas", "netlib"), ("mkl", "mkl"),
              ("blis", "blis"), ("atlas", "atlas"))


def _sgemm_file():
    """The real path of the file whose sgemm_ torch's calls bind to, or None where no sgemm_ is
    exported to torch (a wheel with its BLAS linked in) or the lookup is not possible."""
    import ctypes

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    try:
        dl = ctypes.CDLL("libdl.so.2")  # dladdr; on glibc >= 2.34 found in libc through it
        dl.dladdr.argtypes = (ctypes.c_void_p, ctypes.POINTER(DlInfo))
        # glibc binds libtorch's sgemm_ by searching the global scope (the program and the
        # RTLD_GLOBAL libraries) first, then the dependencies of the library whose dlopen
        # loaded libtorch, torch._C, breadth first in link order: ask the same in that order.
        for path in (None, torch._C.__file__):
            try:
                sgemm = ctypes.cast(getattr(ctypes.CDLL(path), "sgemm_"), ctypes.c_void_p)
            except AttributeError:
                continue
            info = DlInfo()
            if dl.dladdr(sgemm, ctypes.byref(info)) and info.dli_fname:
                # The loaded name is libblas.so.3, a link through /etc/alternatives.
                return os.path.realpath(os.fsdecode(info.dli_fname))
            return None
    except (OSError, AttributeError):
        pass
    return None


def _blas_name():
    """The BLAS this process's torch computes with: the library that provides the sgemm_ torch
    calls (Debian's torch links the system's libblas.so.3 and liblapack.so.3). Not simply a
    BLAS mapped into the process: the maps may hold one that does not serve torch's sgemm_,
    e.g. libopenblas pulled in by OpenBLAS's liblapack.so.3 while libblas.so.3 is netlib's.
    Where no sgemm_ is found, the BLAS mapped after a matrix product; where neither names a
    BLAS (an sgemm_ from libtorch itself), torch's build setting (pip wheels carry MKL or
    OpenBLAS inside)."""
    a = torch.ones(8, 8)
    (a @ a).sum()
    provider = _sgemm_file()
    if provider is not None:
        for needle, name in BLAS_KINDS:
            if needle in provider.lower():
                return name
    else:
        try:
            with open("/proc/self/maps") as maps:
                paths = [line.split()[-1] for line in maps if "/" in line]
        except OSError:
            paths = []
        for path in paths:
            for needle, name in BLAS_KINDS:
                if needle in path.lower():
                    return name
    config = torch.__config__.show()
    at = config.find("BLAS_INFO=")
    return config[at + 10:].split(",")[0].strip() if at >= 0 else "blas"


def _device_class():
    version = ".".join(torch.__version__.split(".")[:2])
    return f"torch-{version}-{_blas_name()}"


class Unsupported(Exception):
    pass


def parse_config(cfg):
    """The forward's parameters from a Hugging Face config.json; raises Unsupported naming the
    key it does not implement."""
    mt = cfg.get("model_type")
    if mt not in FAMILY_KEYS:
        raise Unsupported(f"model_type {mt!r} (this engine implements llama, mistral, qwen2)")
    for key in cfg:
        if key not in INERT_KEYS and key not in FAMILY_KEYS[mt]:
            raise Unsupported(f"config key {key!r} is not implemented for {mt}")
    if cfg.get("hidden_act", "silu") != "silu":
        raise Unsupported(f"hidden_act {cfg['hidden_act']!r} (only silu)")
    if cfg.get("pretraining_tp", 1) != 1:
        raise Unsupported(f"pretraining_tp {cfg['pretraining_tp']}")
    theta = cfg.get("rope_theta", 10000.0)
    for key in ("rope_scaling", "rope_parameters"):
        rp = cfg.get(key)
        if rp is None:
            continue
        kind = rp.get("rope_type", rp.get("type", "default"))
        if kind != "default":
            raise Unsupported(f"{key} of rope_type {kind!r} (only the default RoPE)")
        extra = set(rp) - {"rope_type", "type", "rope_theta"}
        if extra:
            raise Unsupported(f"{key} keys {sorted(extra)}")
        theta = rp.get("rope_theta", theta)

    p = {"model_type": mt}
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads"):
        if key not in cfg:
            raise Unsupported(f"config has no {key}")
        p[key] = int(cfg[key])
    p["num_key_value_heads"] = int(cfg.get("num_key_value_heads") or p["num_attention_heads"])
    p["head_dim"] = int(cfg.get("head_dim") or p["hidden_size"] // p["num_attention_heads"])
    if p["num_attention_heads"] % p["num_key_value_heads"]:
        raise Unsupported("num_attention_heads is not a multiple of num_key_value_heads")
    p["eps"] = float(cfg.get("rms_norm_eps", 1e-6))
    p["theta"] = float(theta)
    p["tie"] = bool(cfg.get("tie_word_embeddings", False))

    # Which layers slide, and by how much: key j is visible from position i when
    # 0 <= i - j < window (transformers' sliding_window mask).
    L = p["num_hidden_layers"]
    window = 0
    sliding = [False] * L
    if mt == "mistral":
        window = cfg.get("sliding_window", 4096) or 0  # MistralConfig's default is 4096
        sliding = [window > 0] * L
    elif mt == "qwen2":
        if cfg.get("use_sliding_window", False):
            window = cfg.get("sliding_window", 4096) or 0
            first = int(cfg.get("max_window_layers", 28))
            sliding = [window > 0 and l >= first for l in range(L)]
        elif any(t == "sliding_attention" for t in cfg.get("layer_types") or []):
            raise Unsupported("layer_types has sliding_attention layers but use_sliding_window is false")
    types = cfg.get("layer_types")
    if types is not None:
        if len(types) < L or any(t not in ("full_attention", "sliding_attention") for t in types):
            raise Unsupported(f"layer_types {types}")
        if any(t == "sliding_attention" for t in types) and mt == "llama":
            raise Unsupported("sliding_attention layers in a llama config")
        sliding = [t == "sliding_attention" for t in types[:L]]
        if any(sliding) and window <= 0:
            raise Unsupported("layer_types has sliding_attention layers but sliding_window is not set")
    p["window"] = int(window)
    p["sliding"] = sliding
    return p


class LlamaForward:
    """The weights in one dtype and the forward pass; a cache is a list of [keys, values] per
    layer, each [kv_heads, length, head_dim]."""

    def __init__(self, p, weights, dtype):
        self.p, self.dtype = p, dtype

        def get(name, required=True):
            if name not in weights:
                if required:
                    raise ValueError(f"the weights have no {name}")
                return None
            # Stored dtype (F64 for synthetic weights) straight to the target's: one rounding.
            return weights[name].to(dtype).contiguous()

        self.embed = get("model.embed_tokens.weight")
        self.norm = get("model.norm.weight")
        if p["tie"]:
            self.head = self.embed
        else:
            self.head = get("lm_head.weight")
        self.layers = []
        for l in range(p["num_hidden_layers"]):
            pre = f"model.layers.{l}."
            layer = {}
            for short, name in (("q", "self_attn.q_proj"), ("k", "self_attn.k_proj"),
                                ("v", "self_attn.v_proj"), ("o", "self_attn.o_proj"),
                                ("gate", "mlp.gate_proj"), ("up", "mlp.up_proj"),
                                ("down", "mlp.down_proj")):
                layer[short] = get(pre + name + ".weight")
                layer[short + "_bias"] = get(pre + name + ".bias", required=False)
            layer["attn_norm"] = get(pre + "input_layernorm.weight")
            layer["mlp_norm"] = get(pre + "post_attention_layernorm.weight")
            self.layers.append(layer)
        hd = p["head_dim"]
        # RoPE frequencies theta^(-2i/d) in fp64; angles are formed in fp64 and their cos and
        # sin rounded to fp32 once (the rotation itself is computed in fp32).
        self.inv_freq = p["theta"] ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)

    def new_cache(self):
        return [None] * self.p["num_hidden_layers"]

    def rmsnorm(self, x, w):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.p["eps"])
        return (y * w.float()).to(self.dtype)

    def linear(self, x, w, b):
        if b is None:
            return torch.nn.functional.linear(x, w)
        # The bias is added to the fp32 product before the one rounding (a GEMM epilogue).
        return (torch.nn.functional.linear(x.float(), w.float()) + b.float()).to(self.dtype) \
            if self.dtype != torch.float32 else torch.nn.functional.linear(x, w, b)

    def rope(self, x, positions):
        # x [n, heads, hd]; rotate-half pairing (i, i + hd/2), as Hugging Face lays heads out.
        ang = positions.to(torch.float64)[:, None] * self.inv_freq[None, :]
        ang = torch.cat([ang, ang], dim=-1)
        cos, sin = ang.cos().float()[:, None, :], ang.sin().float()[:, None, :]
        xf = x.float()
        half = xf.shape[-1] // 2
        rot = torch.cat([-xf[..., half:], xf[..., :half]], dim=-1)
        return (xf * cos + rot * sin).to(self.dtype)

    def step(self, cache, tokens, start, want_taps):
        p = self.p
        n, H, KV, hd = len(tokens), p["num_attention_heads"], p["num_key_value_heads"], p["head_dim"]
        taps = {} if want_taps else None
        ids = torch.tensor(tokens, dtype=torch.long)
        if int(ids.min()) < 0 or int(ids.max()) >= p["vocab_size"]:
            raise ValueError(f"a token id outside the vocabulary of {p['vocab_size']}")
        positions = torch.arange(start, start + n)
        x = self.embed[ids]
        if want_taps:
            taps["embed"] = x
        for l, L in enumerate(self.layers):
            pre = f"layers.{l}."
            h = self.rmsnorm(x, L["attn_norm"])
            if want_taps:
                taps[pre + "attn_norm"] = h
            q = self.linear(h, L["q"], L["q_bias"]).view(n, H, hd)
            k = self.linear(h, L["k"], L["k_bias"]).view(n, KV, hd)
            v = self.linear(h, L["v"], L["v_bias"]).view(n, KV, hd)
            q, k = self.rope(q, positions), self.rope(k, positions)
            k, v = k.transpose(0, 1), v.transpose(0, 1)  # [KV, n, hd]
            if cache[l] is not None:
                k = torch.cat([cache[l][0], k], dim=1)
                v = torch.cat([cache[l][1], v], dim=1)
            cache[l] = [k, v]
            kv_len = k.shape[1]
            group = H // KV
            kf = k.float().repeat_interleave(group, dim=0)  # query head h reads kv head h // group
            vv = v.repeat_interleave(group, dim=0)
            scores = torch.matmul(q.float().transpose(0, 1), kf.transpose(1, 2)) / (hd ** 0.5)
            keys = torch.arange(kv_len)
            dist = positions[:, None] - keys[None, :]  # [n, kv_len]
            masked = dist < 0
            if p["sliding"][l]:
                masked = masked | (dist >= p["window"])
            scores = scores.masked_fill(masked[None, :, :], float("-inf"))
            probs = torch.softmax(scores, dim=-1).to(self.dtype)
            att = torch.matmul(probs, vv).transpose(0, 1).reshape(n, H * hd)
            attn_out = self.linear(att, L["o"], L["o_bias"])
            if want_taps:
                taps[pre + "attn_out"] = attn_out
            x = x + attn_out
            h = self.rmsnorm(x, L["mlp_norm"])
            gate = self.linear(h, L["gate"], L["gate_bias"])
            up = self.linear(h, L["up"], L["up_bias"])
            act = (torch.nn.functional.silu(gate.float()) * up.float()).to(self.dtype)
            mlp_out = self.linear(act, L["down"], L["down_bias"])
            if want_taps:
                taps[pre + "mlp_out"] = mlp_out
            x = x + mlp_out
        h = self.rmsnorm(x, self.norm)
        logits = torch.nn.functional.linear(h, self.head)
        if want_taps:
            taps["final_norm"] = h
            taps["logits"] = logits
        return logits, taps


MATH_MODE = {
    "fp32": "plain PyTorch Llama forward on the CPU: fp32 weights and activations, fp32 GEMM",
    "bf16": "plain PyTorch Llama forward on the CPU: bf16 weights and op outputs, bf16 GEMM with "
            "fp32 accumulation; norms, RoPE, softmax, SwiGLU in fp32 rounded once to bf16; "
            "attention scores fp32",
}


class Engine:
    def check(self):
        if torch is None:
            raise ep.Unavailable("torch is not installed for this Python (Debian: apt-get install "
                                 "python3-torch)")

    def check_request(self, request):
        pass

    def run(self, request):
        torch.set_num_threads(1)
        torch.backends.mkldnn.enabled = False
        unsupported = {}
        try:
            p = parse_config(ep.read_config(request))
        except Unsupported as e:
            return {t["name"]: str(e) for t in request["targets"]}
        weights = None
        for target in request["targets"]:
            name, precision, options = target["name"], target["precision"], target["options"]
            device = options.get("device", "cpu")
            unknown = set(options) - {"device"}
            if device != "cpu":
                unsupported[name] = f"device {device!r} (this engine runs on the cpu only)"
                continue
            if unknown:
                unsupported[name] = f"options {sorted(unknown)} are not implemented"
                continue
            if precision not in MATH_MODE:
                unsupported[name] = f"precision {precision} (this engine computes fp32 and bf16)"
                continue
            if weights is None:
                weights = ep.load_weights(request)
            model = LlamaForward(p, weights, ep.torch_dtype(precision))
            metadata = {
                "engine": f"pinmark torch_llama_engine {ENGINE_VERSION}, torch {torch.__version__}",
                "device": "CPU, 1 thread, ATen's default kernels, oneDNN off",
                # CPU numbers depend on the torch build and the BLAS it calls (Debian's torch
                # takes whichever libblas.so.3 the system's alternatives select): the rows are
                # keyed by both, as GPU rows are by compute capability.
                "device_class": _device_class(),
                "math_mode": MATH_MODE[precision],
            }
            with torch.no_grad():
                tensors = ep.run_target_outputs(model.step, model.new_cache, request, metadata)
            ep.write_safetensors(target["output"], tensors, metadata)
        return unsupported


if __name__ == "__main__":
    sys.exit(ep.serve(Engine()))
