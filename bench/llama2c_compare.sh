#!/usr/bin/env bash
# pinmark's CPU runtime beside llama2.c's run.c on the same model, measured in one run.
#
#   bench/llama2c_compare.sh LLAMA2C_DIR [BUILD_DIR]
#
# LLAMA2C_DIR is a checkout of https://github.com/karpathy/llama2.c (fetched by you, never
# committed here). run.c is built twice, as its Makefile's `runfast` and `runomp` targets build
# it (-Ofast; -Ofast -fopenmp -march=native), and run greedily (-t 0) for 256 steps on the
# checkpoint cpu_bench writes: pinmark's synthetic weights at stories15M and stories110M
# dimensions in llama2.c's format, with a placeholder tokenizer. llama2.c prints its own
# "achieved tok/s"; cpu_bench prints pinmark's decode and prefill rates and GEMM beside OpenBLAS.
set -euo pipefail
llama2c="${1:?usage: bench/llama2c_compare.sh LLAMA2C_DIR [BUILD_DIR]}"
build="${2:-build}"
bench="$build/bench/cpu_bench"
[ -x "$bench" ] || { echo "no $bench: build the cpu_bench target first" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cc -Ofast -o "$work/run" "$llama2c/run.c" -lm
cc -Ofast -fopenmp -march=native -o "$work/runomp" "$llama2c/run.c" -lm
"$bench" --write-tokenizer "$work/tokenizer.bin"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
for model in stories15M stories110M; do
  "$bench" --model "$model" --write-llama2c "$work/$model.bin"
  echo
  echo "== $model: llama2.c run.c, 256 greedy steps"
  for variant in "run 1" "runomp 1" "runomp 2"; do
    set -- $variant
    rate=$(OMP_NUM_THREADS="$2" "$work/$1" "$work/$model.bin" -z "$work/tokenizer.bin" -t 0 -n 256 \
           2>&1 >/dev/null | sed -n 's/achieved tok\/s: //p')
    printf '  %-8s %d thread(s): %8.1f tok/s\n' "$1" "$2" "$rate"
  done
  echo "== $model: pinmark"
  "$bench" --model "$model" --threads 1,2 $([ "$model" = stories15M ] && echo --gemm) | sed 's/^/  /'
done
