#!/usr/bin/env bash
# Installs the system packages loralab's tests need on Debian 12, when they are missing:
#   mesa-vulkan-drivers  Mesa's lavapipe: a software Vulkan driver, so WebGPU (and every WGSL
#                        kernel) runs on machines without a GPU.
#   libopenblas0-pthread OpenBLAS: the CPU backend's matrix products call its cblas_sgemm through
#                        Deno FFI (50-100x the TypeScript loop; without it the loop is used).
#   jupyter-nbconvert jupyter-client jupyter-notebook
#                        Jupyter: `deno task notebooks` and tests/notebooks execute the notebooks
#                        headless with Deno's kernel (kernels/deno); `deno task notebook` serves them.
#   chromium             headless browser: tests check that each notebook's exported HTML loads
#                        without errors and draws its charts (tools/check_notebook_html.py).
# As root it installs them with apt-get; otherwise it prints the exact command and fails.
# `setup.sh run` installs only what the run tasks need (train, pretrain, generate: OpenBLAS);
# `setup.sh` (the test task) installs everything.
set -euo pipefail
profile="${1:-all}"
# Mesa wants a private runtime directory; without one it prints harmless "XDG_RUNTIME_DIR"
# errors into every log. The deno tasks point XDG_RUNTIME_DIR here.
mkdir -p -m 700 /tmp/loralab-runtime
need=()
pkgs=(mesa-vulkan-drivers libopenblas0-pthread jupyter-nbconvert jupyter-client jupyter-notebook
  chromium)
if [ "$profile" = "run" ]; then
  pkgs=(libopenblas0-pthread)
fi
for pkg in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    need+=("$pkg")
  fi
done
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
cmd="apt-get update && apt-get install -y --no-install-recommends ${need[*]}"
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "loralab setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
else
  echo "loralab setup: missing system packages: ${need[*]}" >&2
  echo "run as root:  $cmd" >&2
  exit 1
fi
