#!/usr/bin/env bash
# Runs each libFuzzer target (fuzz/*_fuzzer.cpp) for SECONDS (default 20) from its seed corpus
# fuzz/corpus/<name>/, built in the instrumented tree of ci/sanitizer-build.sh (build-sanitize,
# or $PINMARK_SANITIZE_BUILD_DIR: clang, ASan, UBSan, coverage on every library), which it builds
# first if needed. Prints per target its run time, executions and whether it found anything;
# exits 1 when any target crashed, leaked, timed out or ran out of memory.
#
#   bash ci/fuzz.sh [SECONDS]
#
# New inputs that reach new code go to $build/corpus/<name>/ (the checked-in seeds stay as
# they are); a failing input is saved as $build/artifacts/<name>/crash-* (or leak-, timeout-,
# oom-) and reproduced by running the target on that file (see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
build="${PINMARK_SANITIZE_BUILD_DIR:-build-sanitize}"
bash ci/sanitizer-build.sh --target fuzzers

export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export OMP_NUM_THREADS=1

shopt -s nullglob
sources=(fuzz/*_fuzzer.cpp)
if ((${#sources[@]} == 0)); then
  echo "fuzz: no targets (fuzz/*_fuzzer.cpp)" >&2
  exit 1
fi

failed=()
summary=()
for source in "${sources[@]}"; do
  name="$(basename "$source" .cpp)"
  corpus="fuzz/corpus/${name%_fuzzer}"
  work="$build/corpus/$name"
  artifacts="$build/artifacts/$name"
  log="$build/logs/$name.log"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  seeds=()
  seed_count=0
  if [ -d "$corpus" ]; then
    seeds=("$corpus")
    seed_count=$(find "$corpus" -type f | wc -l)
  else
    echo "fuzz: $name has no seed corpus ($corpus)" >&2
  fi
  start=$(date +%s.%N)
  status=0
  # -timeout: one input running this long is a finding (hangs, runaway sizes), not patience.
  "$build/fuzz/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "${seeds[@]}" >"$log" 2>&1 ||
    status=$?
  elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  found=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
  if [ "$status" -eq 0 ]; then
    verdict="nothing found"
  else
    verdict="FOUND (exit $status): ${found:-see $log}"
    failed+=("$name")
  fi
  line="$name: ${elapsed} s, ${executions:-?} executions, $seed_count seeds + $(find "$work" -type f | wc -l) found inputs, $verdict"
  summary+=("$line")
  echo "fuzz: $line"
  if [ "$status" -ne 0 ]; then
    grep -m1 -E "ERROR: |runtime error: |==ERROR" "$log" || true
    echo "fuzz: reproduce with: $build/fuzz/$name ${found:-<input>}   (full log: $log)"
  fi
done

echo "fuzz summary (${seconds} s per target):"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  echo "fuzz: ${#failed[@]} target(s) found a failure: ${failed[*]}" >&2
  exit 1
fi
