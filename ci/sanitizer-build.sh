#!/usr/bin/env bash
# Configures and builds the instrumented tree that ci/sanitize.sh and ci/fuzz.sh share:
# clang with AddressSanitizer and UBSan (every finding stops its process) and libFuzzer's
# coverage instrumentation on every library (PINMARK_FUZZ=ON), so one build gives the whole test
# suite under the sanitizers and the fuzz targets. Into build-sanitize (or
# $PINMARK_SANITIZE_BUILD_DIR); extra arguments go to `cmake --build` (e.g. --target fuzzers).
#
# -O1, not Release's -O3: the sanitized build is for finding faults, and -O1 compiles in less
# than half the time while keeping the stack traces exact (-gline-tables-only gives them file
# and line). clang's UBSan also checks pointer arithmetic that gcc's does not.
#
# A unity build (eight sources compiled as one) takes two thirds of the time of one compile per
# file, on 2 cores 4.3 against 6.4 minutes, because nlohmann/json and GoogleTest are compiled
# once per batch. ci/build.sh still compiles each file of the libraries on its own, so a file
# that only builds with its batch's includes is caught there.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${PINMARK_SANITIZE_BUILD_DIR:-build-sanitize}"

# clang with its sanitizer and libFuzzer runtimes (only recommended by clang on Debian, so
# named here) and LLVM's OpenMP, which clang links instead of GCC's.
packages=(clang libclang-rt-dev libomp-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS_RELEASE="-O1 -gline-tables-only -DNDEBUG" \
  -DPINMARK_FUZZ=ON -DPINMARK_CUDA=OFF -DCMAKE_UNITY_BUILD=ON >/dev/null
cmake --build "$build" -j"$(nproc)" "$@"
