#!/usr/bin/env bash
# Runs bench/llama_bench_engine (the bench's device-resident bf16 forward as a pinmark engine,
# docs/engines.md): $PINMARK_LLAMA_BENCH_ENGINE when set, otherwise the one a CUDA build of
# this checkout made in build/. A machine without it (no CUDA build) has the engine
# unavailable, and its rows are carried from the goldens, as GPU rows are.
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
engine="${PINMARK_LLAMA_BENCH_ENGINE:-$root/build/bench/llama_bench_engine}"
if [ ! -x "$engine" ]; then
  echo "{\"unavailable\": \"no llama_bench_engine at $engine (a CUDA build makes it)\"}"
  exit 0
fi
exec "$engine"
