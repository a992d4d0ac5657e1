#!/usr/bin/env bash
# Installs what pinmark needs to build and test on a fresh Debian (bookworm or later) machine.
# Run as root, or with sudo available.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libcmark-gfm-dev libcmark-gfm-extensions-dev  # Markdown parsing (GFM tables)
  libdtl-dev                                     # diffs
  nlohmann-json3-dev                             # Config / Inputs / Kernel blocks
  libgtest-dev                                   # unit and case tests
  python3-torch                                  # the CPU engine of cases/pinmark-engines.json
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
