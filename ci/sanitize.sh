#!/usr/bin/env bash
# Runs the whole test suite under AddressSanitizer and UBSan: the shipped goldens through
# `pinmark run cases`, and every other test through ctest, in the instrumented tree that
# ci/sanitizer-build.sh builds (build-sanitize, or $PINMARK_SANITIZE_BUILD_DIR; it builds it
# first). Every finding stops its process (halt_on_error here, -fno-sanitize-recover=all in the
# build), so any finding fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${PINMARK_SANITIZE_BUILD_DIR:-build-sanitize}"
bash ci/sanitizer-build.sh

export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# The engines of cases/pinmark-engines.json are other programs, not what the sanitizers check
# (the plain test step measures their rows): here their rows are carried from the goldens.
export PINMARK_NO_ENGINES=1

# Both halves run even when the first fails, so one CI run shows every finding. The per-case
# tests of ctest (cases/...) run each shipped case again, one process each, and
# cases.engine_rows runs them all again for the engines' rows: `pinmark run cases` has just run
# every one of them under the same sanitizers (the engines off), so ctest leaves them out.
status=0
"$build/driver/pinmark" run cases -q || status=1
ctest --test-dir "$build" --output-on-failure --no-tests=error -j"$(nproc)" -E '^cases[/.]' || status=1
exit "$status"
