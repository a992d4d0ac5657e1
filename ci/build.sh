#!/usr/bin/env bash
# Configures and builds pinmark into build/ (or $PINMARK_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${PINMARK_BUILD_DIR:-build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build" -j"$(nproc)"
