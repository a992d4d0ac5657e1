#!/usr/bin/env bash
# Builds pinmark with AddressSanitizer and UBSan into build-asan (or $PINMARK_ASAN_BUILD_DIR)
# and runs the whole test suite under them: the shipped goldens through `pinmark run cases`,
# and every other test through ctest. Every finding stops its process
# (halt_on_error here, -fno-sanitize-recover=all in the build), so any finding fails this
# script. Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${PINMARK_ASAN_BUILD_DIR:-build-asan}"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DPINMARK_SANITIZE=ON -DPINMARK_CUDA=OFF "$@"
cmake --build "$build" -j"$(nproc)"

export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# The engines of cases/pinmark-engines.json are other programs, not what the sanitizers check
# (the plain test step measures their rows): here their rows are carried from the goldens.
export PINMARK_NO_ENGINES=1

# Both halves run even when the first fails, so one CI run shows every finding. The per-case
# tests of ctest (cases/...) run each shipped case again, one process each: `pinmark run cases`
# has just run every one of them under the same sanitizers, so ctest leaves them out.
status=0
"$build/driver/pinmark" run cases -q || status=1
ctest --test-dir "$build" --output-on-failure --no-tests=error -j"$(nproc)" -E '^cases/' || status=1
exit "$status"
