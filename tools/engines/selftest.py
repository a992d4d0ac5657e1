#!/usr/bin/env python3
"""Checks a pinmark engine against pinmark's fp64 oracle, by hand:

    python3 tools/engines/selftest.py [--engine torch|transformers] [--device cpu|cuda]
                                      [--pinmark build/driver/pinmark] [--keep DIR] [CASE ...]

For each case (default: a few Llama, Mistral and Qwen2 cases; a CASE is a case's name, which
`pinmark export` writes out, or a folder `pinmark export` wrote) it writes a request.json into
the export as pinmark would (each sequence's prompt, forced = the oracle's greedy tokens but
the last), runs the engine in one-shot mode, and compares each target's output with
oracle.safetensors: the logits (prompt and decode), every tap the engine wrote, and the
repeat's bits. Then it drives the engine through the line protocol as pinmark does (several
requests, a stray line, a missing request, an unsupported option, EOF). Prints one line per
check; exits 1 on any mismatch. Standard library and torch only.

  --engine torch (default): tools/engines/torch_llama_engine.py, targets `torch-cpu fp32` and
      `torch-cpu bf16`; also checks that rope scaling is answered `unsupported`.
  --engine transformers: tools/engines/transformers_engine.py, targets eager fp32, sdpa fp32,
      sdpa bf16 and eager fp16 on --device (default cuda).
"""

import json
import os
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    # As in torch_llama_engine.py: Debian's python3-torch belongs to /usr/bin/python3.
    system = "/usr/bin/python3"
    if (os.path.exists(system) and not os.environ.get("PINMARK_ENGINE_REEXEC")
            and os.path.realpath(sys.executable) != os.path.realpath(system)):
        os.environ["PINMARK_ENGINE_REEXEC"] = "1"
        os.execv(system, [system, os.path.abspath(__file__)] + sys.argv[1:])
    sys.exit("selftest: torch is not installed (Debian: apt-get install python3-torch)")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import engine_protocol as ep  # noqa: E402

ENGINES = {"torch": os.path.join(HERE, "torch_llama_engine.py"),
           "transformers": os.path.join(HERE, "transformers_engine.py")}
ENGINE = ENGINES["torch"]

DEFAULT_CASES = [
    "cases/models/llama.md::untied_lm_head",
    "cases/models/llama.md::tied_lm_head",
    "cases/models/llama.md::three_layers",
    "cases/models/llama.md::a_config_json_pasted_from_the_hub_shrunk",
    "cases/models/mistral.md::sliding_window_4_over_a_nine_token_prompt",
    "cases/models/mistral.md::sliding_window_4_one_token_at_a_time_through_the_cache",
    "cases/models/mistral.md::checkpoint_mistral_with_sliding_window_4",
    "cases/models/qwen.md::qwen2_q_k_v_biases_and_a_tied_head",
    "cases/models/qwen.md::qwen2_with_use_sliding_window_the_window_starts_at_max_window_layers",
    "cases/models/qwen.md::checkpoint_qwen2_stored_as_fp16",
]
UNSUPPORTED_CASE = "cases/models/llama.md::rope_scaling_llama3_as_llama_3_1_ships_it"

# Bounds on rel L2 against the oracle: far above what rounding costs (fp32 ~1e-7, bf16 ~1e-2)
# and far below what a wrong formula costs (~1).
BOUND = {"fp32": 1e-5, "bf16": 0.08, "fp16": 0.01}
TARGETS = [{"name": "torch-cpu fp32", "precision": "fp32", "options": {"device": "cpu"}},
           {"name": "torch-cpu bf16", "precision": "bf16", "options": {"device": "cpu"}}]


def transformers_targets(device):
    return [{"name": f"transformers-{attn} {precision}", "precision": precision,
             "options": {"device": device, "attn_implementation": attn}}
            for attn, precision in (("eager", "fp32"), ("sdpa", "fp32"), ("sdpa", "bf16"),
                                    ("eager", "fp16"))]


def make_request(export_dir, targets, out_dir, path=None):
    """request.json for an export folder, as pinmark writes it; returns its path."""
    with open(os.path.join(export_dir, "index.json")) as f:
        index = json.load(f)
    model = index["model"]
    inputs = ep.read_safetensors(os.path.join(export_dir, "inputs.safetensors"))
    oracle = ep.read_safetensors(os.path.join(export_dir, "oracle.safetensors"))
    sequences = []
    for s in range(model["sequences"]):
        generated = oracle[f"sequence.{s}.generated"].tolist()
        sequences.append({"prompt": inputs[f"sequence.{s}.tokens"].tolist(),
                          "forced": generated[:-1]})
    request = {
        "protocol": 1,
        "case": index["case"]["name"],
        "model_type": model["model_type"],
        "config": os.path.join(export_dir, "config.json"),
        "sequences": sequences,
        "prefill_chunk": model.get("prefill_chunk", 0),
        "targets": [],
    }
    if "checkpoint" in model:
        request["checkpoint"] = os.path.join(ROOT, model["checkpoint"]["path"])
    else:
        request["weights"] = os.path.join(export_dir, model["weights"])
    os.makedirs(out_dir, exist_ok=True)
    for i, t in enumerate(targets):
        request["targets"].append(dict(t, output=os.path.join(out_dir, f"{i}.safetensors")))
    path = path or os.path.join(export_dir, "request.json")
    with open(path, "w") as f:
        json.dump(request, f, indent=1)
    return path


def rel_l2(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm()) if float(b.norm()) > 0 else float((a - b).norm())


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, ok, what):
        print(("ok    " if ok else "FAIL  ") + what, flush=True)
        if not ok:
            self.failed += 1


def compare(checks, label, output, oracle_path, precision, sequences):
    """The output file of one target against the oracle."""
    out = ep.read_safetensors(output)
    _, meta, _ = ep.read_safetensors_header(output)
    oracle = ep.read_safetensors(oracle_path)
    checks.check(all(meta.get(k) is not None for k in ("engine", "device", "device_class",
                                                       "math_mode")),
                 f"{label}: metadata {json.dumps(meta)}")
    bound = BOUND[precision]
    got, want = [], []
    for s in range(sequences):
        for key in ("logits", "decode_logits"):
            name = f"sequence.{s}.{key}"
            if name not in oracle:
                checks.check(name not in out, f"{label}: no {name}, as the oracle has none")
                continue
            if name not in out or out[name].shape != oracle[name].shape:
                checks.check(False, f"{label}: {name} missing or of the wrong shape")
                continue
            got.append(out[name].reshape(-1))
            want.append(oracle[name].reshape(-1))
            checks.check(torch.equal(out[name], out["repeat." + name]),
                         f"{label}: repeat.{name} has the same bits")
    err = rel_l2(torch.cat(got), torch.cat(want))
    checks.check(err <= bound, f"{label}: logits rel L2 {err:.2e} (bound {bound:g})")
    worst, count = ("", 0.0), 0
    for name in sorted(out):
        if ".taps." not in name or name.startswith("repeat."):
            continue
        count += 1
        if name not in oracle or out[name].shape != oracle[name].shape:
            checks.check(False, f"{label}: tap {name} is not the oracle's (name or shape)")
            continue
        e = rel_l2(out[name], oracle[name])
        if e > bound:
            checks.check(False, f"{label}: tap {name} rel L2 {e:.2e} (bound {bound:g})")
        if e >= worst[1]:
            worst = (name, e)
    checks.check(count > 0 and worst[1] <= bound,
                 f"{label}: {count} taps, worst {worst[0]} rel L2 {worst[1]:.2e}")
    return err


def export(pinmark, case, folder):
    r = subprocess.run([pinmark, "export", case, "--out", folder, "--force"], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"pinmark export {case} failed:\n{r.stdout}")


def one_shot(request):
    r = subprocess.run([sys.executable, ENGINE, "--request", request], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    replies = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    return r.returncode, replies, r.stderr


def protocol(checks, requests, unsupported_request, odd_option_request):
    """The engine as pinmark runs it: one process, a line per request, a reply per line."""
    env = dict(os.environ, PINMARK_ENGINE_PROTOCOL="1")
    p = subprocess.Popen([sys.executable, ENGINE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=os.path.join(ROOT, "cases"))

    def ask(line):
        p.stdin.write(line + "\n")
        p.stdin.flush()
        return json.loads(p.stdout.readline())

    for path in requests:
        answer = ask(json.dumps({"request": path}))
        checks.check(answer == {"done": path}, f"protocol: {os.path.basename(os.path.dirname(path))}: {answer}")
    answer = ask("this is not a request")
    checks.check("error" in answer, f"protocol: a stray line is answered with an error: {answer}")
    answer = ask(json.dumps({"request": "/nonexistent/request.json"}))
    checks.check("error" in answer, f"protocol: a missing request is an error: {answer}")
    if unsupported_request:
        answer = ask(json.dumps({"request": unsupported_request}))
        checks.check(set(answer.get("unsupported", {})) == {t["name"] for t in TARGETS}
                     and "rope" in json.dumps(answer),
                     f"protocol: rope scaling is unsupported: {answer}")
    answer = ask(json.dumps({"request": odd_option_request}))
    checks.check(list(answer.get("unsupported", {})) == ["odd fp32"],
                 f"protocol: an unknown option is unsupported: {answer}")
    answer = ask(json.dumps({"request": requests[0]}))
    checks.check(answer == {"done": requests[0]}, "protocol: still answering after an error")
    p.stdin.close()
    rc = p.wait(timeout=60)
    checks.check(rc == 0, f"protocol: exit status {rc} at the end of stdin")


def main(argv):
    global ENGINE, TARGETS
    pinmark = os.path.join(ROOT, "build", "driver", "pinmark")
    keep, engine, device = None, "torch", "cuda"
    cases = []
    i = 0
    while i < len(argv):
        if argv[i] in ("--pinmark", "--keep", "--engine", "--device") and i + 1 < len(argv):
            if argv[i] == "--pinmark":
                pinmark = os.path.abspath(argv[i + 1])
            elif argv[i] == "--keep":
                keep = os.path.abspath(argv[i + 1])
            elif argv[i] == "--engine":
                engine = argv[i + 1]
            else:
                device = argv[i + 1]
            i += 2
        elif argv[i].startswith("-"):
            sys.exit(__doc__)
        else:
            cases.append(argv[i])
            i += 1
    if engine not in ENGINES:
        sys.exit(f"selftest: --engine is one of {sorted(ENGINES)}")
    ENGINE = ENGINES[engine]
    if engine == "transformers":
        TARGETS = transformers_targets(device)
    cases = cases or DEFAULT_CASES
    needs_pinmark = engine == "torch" or any(not os.path.isdir(c) for c in cases)
    if needs_pinmark and not os.path.exists(pinmark):
        sys.exit(f"selftest: no pinmark at {pinmark} (build it, pass --pinmark, or pass "
                 f"folders that `pinmark export` wrote)")
    work = keep or tempfile.mkdtemp(prefix="pinmark-engines-")
    checks = Checks()
    requests = []
    for n, case in enumerate(cases):
        if os.path.isdir(case):
            folder = os.path.abspath(case)
            out = os.path.join(work, f"out{n}")
            req_path = os.path.join(out, "request.json")
        else:
            folder = os.path.join(work, f"case{n}")
            export(pinmark, case, folder)
            out = os.path.join(folder, "out")
            req_path = None
        req = make_request(folder, TARGETS, out, req_path)
        requests.append(req)
        rc, replies, err = one_shot(req)
        ok = rc == 0 and len(replies) == 1 and replies[0].get("done") == req
        checks.check(ok, f"{case}: one-shot reply {replies} (exit {rc})")
        if not ok:
            sys.stderr.write(err[-3000:])
            continue
        with open(req) as f:
            request = json.load(f)
        for t in request["targets"]:
            if t["name"] in replies[0].get("unsupported", {}):
                print(f"      {case} [{t['name']}]: unsupported: {replies[0]['unsupported'][t['name']]}")
                continue
            compare(checks, f"{case} [{t['name']}]", t["output"],
                    os.path.join(folder, "oracle.safetensors"), t["precision"],
                    len(request["sequences"]))
    unsupported = None
    if engine == "torch":
        folder = os.path.join(work, "unsupported")
        export(pinmark, UNSUPPORTED_CASE, folder)
        unsupported = make_request(folder, TARGETS, os.path.join(folder, "out"))
    odd = dict(TARGETS[0], name="odd fp32", precision="fp32",
               options=dict(TARGETS[0]["options"], no_such_option=1))
    odd_request = make_request(os.path.dirname(json.load(open(requests[0]))["config"]), [odd],
                               os.path.join(work, "odd"), os.path.join(work, "odd-request.json"))
    protocol(checks, requests[:3], unsupported, odd_request)
    print(f"{checks.failed} failed" if checks.failed else "all passed",
          f"(files in {work})" if keep else "")
    if not keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
