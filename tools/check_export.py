#!/usr/bin/env python3
"""Checks a folder written by `pinmark export` with the standard library alone (no torch, no
numpy), as a test suite elsewhere would read it before trusting it:

- index.json lists exactly the files in the folder, and each safetensors file's tensors with
  the dtype and shape its header gives; every tensor's byte range fits the data and none
  overlap;
- a model case: each sequence's tokens and positions agree in length, its logits are
  [prompt length, vocab], and the first greedy token is the argmax of the last prompt
  position's logits (the lowest id among equal values);
- a kernel case: the output is there.

Usage: check_export.py DIR [DIR...]   (a folder of a whole file's export is checked case by case)
Exit status 0 when every folder checks, 1 otherwise, naming what is wrong.
"""
import json
import os
import struct
import sys

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4}


class Bad(Exception):
    pass


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise Bad(f"{path}: shorter than its header length")
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    header.pop("__metadata__", None)
    ranges = []
    for name, t in header.items():
        begin, end = t["data_offsets"]
        count = 1
        for d in t["shape"]:
            count *= d
        if end - begin != count * SIZES[t["dtype"]] or end > len(body):
            raise Bad(f"{path}: tensor {name} has bytes [{begin}, {end}] for {t['dtype']} {t['shape']}")
        ranges.append((begin, end, name))
    ranges.sort()
    for a, b in zip(ranges, ranges[1:]):
        if b[0] < a[1]:
            raise Bad(f"{path}: tensors {a[2]} and {b[2]} overlap")
    return header, body


def values(header, body, name):
    t = header[name]
    begin, end = t["data_offsets"]
    fmt = {"F64": "d", "F32": "f", "I64": "q", "I32": "i"}[t["dtype"]]
    count = (end - begin) // SIZES[t["dtype"]]
    return list(struct.unpack(f"<{count}{fmt}", body[begin:end]))


def check_case(folder):
    index = json.load(open(os.path.join(folder, "index.json")))
    listed = {f["file"] for f in index["files"]}
    present = set(os.listdir(folder))
    if listed != present:
        raise Bad(f"{folder}: index.json lists {sorted(listed)}, the folder holds {sorted(present)}")
    files = {}
    tensors = 0
    for f in index["files"]:
        if "tensors" not in f:
            continue
        path = os.path.join(folder, f["file"])
        header, body = read_safetensors(path)
        named = {t["name"]: t for t in f["tensors"]}
        if set(named) != set(header):
            raise Bad(f"{path}: index.json lists {sorted(set(named) ^ set(header))} differently")
        for name, t in named.items():
            if t["dtype"] != header[name]["dtype"] or t["shape"] != header[name]["shape"]:
                raise Bad(f"{path}: {name} is {header[name]['dtype']} {header[name]['shape']}, "
                          f"index.json says {t['dtype']} {t['shape']}")
        files[f["file"]] = (header, body)
        tensors += len(named)
    if index["case"]["kind"] == "kernel":
        if "output" not in files["oracle.safetensors"][0]:
            raise Bad(f"{folder}: oracle.safetensors has no output")
    else:
        inputs, oracle = files["inputs.safetensors"], files["oracle.safetensors"]
        for s in range(index["model"]["sequences"]):
            p = f"sequence.{s}."
            tokens = values(*inputs, p + "tokens")
            if len(values(*inputs, p + "positions")) != len(tokens):
                raise Bad(f"{folder}: sequence {s}'s tokens and positions differ in length")
            rows, vocab = oracle[0][p + "logits"]["shape"]
            if rows != len(tokens):
                raise Bad(f"{folder}: sequence {s} has {rows} rows of logits for {len(tokens)} tokens")
            generated = values(*oracle, p + "generated")
            if generated:
                last = values(*oracle, p + "logits")[-vocab:]
                best = max(range(vocab), key=lambda i: (last[i], -i))
                if generated[0] != best:
                    raise Bad(f"{folder}: sequence {s}'s first greedy token is {generated[0]}, "
                              f"the argmax of its last logits is {best}")
    return tensors


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    status = 0
    for top in argv[1:]:
        index = json.load(open(os.path.join(top, "index.json")))
        folders = [os.path.join(top, c["folder"]) for c in index["cases"]] if "cases" in index else [top]
        for folder in folders:
            try:
                print(f"OK {folder}: {check_case(folder)} tensors")
            except (Bad, KeyError, ValueError, OSError) as e:
                print(f"FAIL {e}", file=sys.stderr)
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
