"""What every pinmark engine shares: the line protocol, safetensors, requests, forced decode.

pinmark starts an engine once per process with PINMARK_ENGINE_PROTOCOL=1 and writes one line
per request on its stdin, {"request": "/abs/.../request.json"}; the engine answers each with
one line on stdout: {"done": path}, {"done": path, "unsupported": {target: why}},
{"error": message}, or, as its first line, {"unavailable": why} and exits 0 (it cannot run on
this machine at all). It exits 0 at the end of stdin. docs/engines.md has the whole exchange.

Standard library and torch only: Debian's python3-torch (1.13) comes without the safetensors
package, so the format (8-byte little-endian header length, a JSON header, raw little-endian
bytes) is read and written here.
"""

import json
import os
import struct
import sys
import tempfile
import traceback

# torch is imported lazily (by the functions that need it), so that an engine can report
# {"unavailable": ...} when it is missing instead of failing on import.

# safetensors dtype name -> torch dtype attribute name, and bytes per element.
_DTYPES = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1),
    "U8": ("uint8", 1), "BOOL": ("bool", 1),
}

PRECISIONS = ("fp32", "bf16", "fp16", "tf32")


def torch_dtype(precision):
    """The storage dtype of a target precision (tf32 stores float32)."""
    import torch
    return {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16,
            "fp16": torch.float16}[precision]


# --- safetensors -------------------------------------------------------------------------------

def read_safetensors_header(path):
    """(header without __metadata__, metadata, offset of the data) of a safetensors file."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        header = json.loads(f.read(n).decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    return header, metadata, 8 + n


def read_safetensors(path, names=None):
    """{name: torch tensor} of a safetensors file (every tensor, or those in `names`)."""
    import torch
    header, _, base = read_safetensors_header(path)
    out = {}
    with open(path, "rb") as f:
        for name, entry in header.items():
            if names is not None and name not in names:
                continue
            dtype = entry["dtype"]
            if dtype not in _DTYPES:
                raise ValueError(f"{path}: tensor {name} has dtype {dtype}, which is not read here")
            tname, size = _DTYPES[dtype]
            begin, end = entry["data_offsets"]
            shape = list(entry["shape"])
            count = 1
            for d in shape:
                count *= d
            if end - begin != count * size:
                raise ValueError(f"{path}: tensor {name}: {end - begin} bytes for shape {shape} {dtype}")
            f.seek(base + begin)
            data = bytearray(f.read(end - begin))
            if len(data) != end - begin:
                raise ValueError(f"{path}: tensor {name} runs past the end of the file")
            if count == 0:
                t = torch.empty(shape, dtype=getattr(torch, tname))
            else:
                t = torch.frombuffer(data, dtype=getattr(torch, tname)).reshape(shape)
            if sys.byteorder != "little" and size > 1:
                raise ValueError("big-endian machines are not supported")
            out[name] = t
    return out


def _tensor_bytes(t):
    import torch
    t = t.detach().to("cpu").contiguous()
    for name, (tname, _) in _DTYPES.items():
        if t.dtype == getattr(torch, tname):
            break
    else:
        raise ValueError(f"cannot write dtype {t.dtype} as safetensors")
    # Reinterpret as bytes without numpy: view as uint8 (same storage), then copy out.
    flat = t.reshape(-1)
    if flat.numel() == 0:
        return name, b""
    if t.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    as_bytes = flat.view(torch.uint8)
    try:
        return name, as_bytes.numpy().tobytes()
    except Exception:  # torch built without numpy
        return name, bytes(as_bytes.tolist())


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} (and string metadata) to `path` atomically: a temporary file in the
    same folder, flushed, then renamed over `path`."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        dtype, blob = _tensor_bytes(tensors[name])
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # align the data to 8 bytes, as safetensors does
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for blob in blobs:
                f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_weights(request):
    """{Hugging Face name: tensor} as stored: the request's synthetic F64 weights, or every
    safetensors file of its checkpoint folder (one file, or shards named by
    model.safetensors.index.json)."""
    if request.get("weights"):
        return read_safetensors(request["weights"])
    folder = request.get("checkpoint")
    if not folder:
        raise ValueError("the request names neither weights nor a checkpoint")
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))
    if not files:
        raise ValueError(f"checkpoint {folder} holds no .safetensors file")
    weights = {}
    for name in files:
        weights.update(read_safetensors(os.path.join(folder, name)))
    return weights


# --- requests ----------------------------------------------------------------------------------

def read_request(path):
    """request.json, checked for what every engine relies on."""
    with open(path) as f:
        request = json.load(f)
    if request.get("protocol") != 1:
        raise ValueError(f"{path}: protocol {request.get('protocol')!r}, this engine speaks 1")
    for key in ("config", "sequences", "targets"):
        if key not in request:
            raise ValueError(f"{path}: no '{key}'")
    for t in request["targets"]:
        name = t.get("name", "")
        precision = t.get("precision") or name.rsplit(" ", 1)[-1]
        if precision not in PRECISIONS:
            raise ValueError(f"{path}: target {name!r}: unknown precision {precision!r}")
        t["precision"] = precision
        t.setdefault("options", {})
        if not t.get("output"):
            raise ValueError(f"{path}: target {name!r} has no output")
    request.setdefault("prefill_chunk", 0)
    request["_path"] = path
    return request


def read_config(request):
    with open(request["config"]) as f:
        return json.load(f)


# --- forced decode -----------------------------------------------------------------------------

def forced_decode(step, new_cache, sequence, prefill_chunk):
    """Runs one sequence alone through a fresh cache: its prompt (whole, or `prefill_chunk`
    tokens per call), then each forced token one at a time.

    step(cache, tokens, start, want_taps) -> (logits [len(tokens), vocab], taps dict or None)
    Returns (prompt logits, decode logits or None, taps of the first call)."""
    import torch
    prompt = [int(t) for t in sequence["prompt"]]
    forced = [int(t) for t in sequence.get("forced", [])]
    if not prompt:
        raise ValueError("a sequence with an empty prompt")
    cache = new_cache()
    chunk = prefill_chunk if prefill_chunk and prefill_chunk > 0 else len(prompt)
    rows, taps, pos = [], None, 0
    for begin in range(0, len(prompt), chunk):
        piece = prompt[begin:begin + chunk]
        logits, t = step(cache, piece, pos, begin == 0)
        if begin == 0:
            taps = t
        rows.append(logits.detach().float().cpu())
        pos += len(piece)
    decode = []
    for token in forced:
        logits, _ = step(cache, [token], pos, False)
        decode.append(logits.detach().float().cpu())
        pos += 1
    return torch.cat(rows), (torch.cat(decode) if decode else None), taps


def run_target_outputs(step, new_cache, request, metadata):
    """Every sequence twice from scratch (the repeat checks determinism); returns the tensors
    of the output file."""
    tensors = {}
    chunk = int(request.get("prefill_chunk") or 0)
    for prefix in ("", "repeat."):
        for s, seq in enumerate(request["sequences"]):
            logits, decode, taps = forced_decode(step, new_cache, seq, chunk)
            tensors[f"{prefix}sequence.{s}.logits"] = logits
            if decode is not None:
                tensors[f"{prefix}sequence.{s}.decode_logits"] = decode
            if prefix == "" and taps:
                for name, t in taps.items():
                    tensors[f"sequence.{s}.taps.{name}"] = t.detach().float().cpu().contiguous()
    return tensors


# --- the loop ----------------------------------------------------------------------------------

class Unavailable(Exception):
    """The engine cannot run on this machine at all (a missing package, no such device)."""


def _log_exception():
    tail = traceback.format_exc().rstrip().splitlines()[-12:]
    sys.stderr.write("\n".join(tail) + "\n")
    sys.stderr.flush()


def _message(e):
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(e).__name__}: {first}"[:2000]


def serve(engine, argv=None):
    """The engine's main: the stdin line protocol, or `--request PATH` (one request, the reply
    printed; exit 0 when done, 1 on an error, 77 when unavailable) for running by hand.

    `engine` has:
      check()          raises Unavailable when the engine cannot run here at all
      check_request(r) raises Unavailable when none of the request's targets can run here
      run(r)           writes every target's output; returns {target name: why unsupported}
    """
    argv = sys.argv[1:] if argv is None else argv
    one_shot = None
    if argv:
        if len(argv) == 2 and argv[0] == "--request":
            one_shot = os.path.abspath(argv[1])
        else:
            sys.stderr.write("usage: ENGINE [--request /path/to/request.json]\n"
                             "  without arguments, speaks pinmark's line protocol on stdin/stdout\n")
            return 2

    # Replies go to the real stdout; everything else that writes to fd 1 (a library's print,
    # a C extension's printf) is sent to stderr, so it cannot interleave with a reply.
    sys.stdout.flush()
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    replies = os.fdopen(reply_fd, "w", buffering=1)
    sys.stdout = sys.stderr

    def reply(obj):
        replies.write(json.dumps(obj) + "\n")
        replies.flush()

    try:
        engine.check()
    except Unavailable as e:
        reply({"unavailable": str(e)})
        return 77 if one_shot else 0

    def handle(path, first):
        try:
            request = read_request(path)
            if first:
                engine.check_request(request)
            unsupported = engine.run(request)
        except Unavailable as e:
            if first:
                return {"unavailable": str(e)}, True
            return {"error": str(e)}, False
        except Exception as e:
            _log_exception()
            return {"error": _message(e)}, False
        out = {"done": path}
        if unsupported:
            out["unsupported"] = unsupported
        return out, False

    if one_shot:
        answer, _ = handle(one_shot, True)
        reply(answer)
        if "unavailable" in answer:
            return 77
        return 1 if "error" in answer else 0

    first = True
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
            path = msg["request"]
        except Exception as e:
            reply({"error": f"not a request line ({_message(e)}): {line[:200]}"})
            continue
        answer, stop = handle(path, first)
        first = False
        reply(answer)
        if stop:
            break
    return 0
