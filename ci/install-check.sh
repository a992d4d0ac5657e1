#!/usr/bin/env bash
# The installed package works for a user: installs pinmark from build/ (or $PINMARK_BUILD_DIR)
# into a temporary prefix, builds examples/ (a user's kernel library, a separate CMake project)
# against it with find_package, and runs its tests: its goldens pass, the wrong variant fails at
# the right tap, and the installed `pinmark` command runs.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${PINMARK_BUILD_DIR:-build}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" ||
  { cat "$work/install.log"; exit 1; }
# Nothing installed may point back into the source or build tree.
if grep -rlF --include='*.cmake' --include='*.h' -e "$PWD/" "$work/prefix"; then
  echo "install-check: the installed files above name the source tree $PWD" >&2
  exit 1
fi
cmake -S examples -B "$work/examples" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log" ||
  { cat "$work/configure.log"; exit 1; }
cmake --build "$work/examples" -j"$(nproc)"
ctest --test-dir "$work/examples" --output-on-failure --no-tests=error
