#!/bin/sh
# Starts Deno's built-in Jupyter kernel with the Deno the project uses: npm's deno@2.9.6, the
# one `npx -y deno@2.9.6 task ...` runs (cached by npx under ~/.npm/_npx). Jupyter finds this
# kernelspec through JUPYTER_PATH=<repo root> (kernels/deno/kernel.json); nothing is installed
# into the home directory. The kernel runs with all permissions (deno jupyter always does).
#
# Which binary: $LORALAB_DENO when set; else `deno` on PATH when it is version 2.9.6 (inside
# `deno task`, npx puts it there); else the one npx resolves (and downloads on first use).
# The script execs it, so Jupyter's interrupt and kill signals reach Deno itself.
set -eu
version=2.9.6
# Mesa (WebGPU on lavapipe) wants a private runtime directory, as in the deno tasks.
XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/loralab-runtime}"
export XDG_RUNTIME_DIR
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
deno="${LORALAB_DENO:-}"
if [ -z "$deno" ] && command -v deno >/dev/null 2>&1; then
  if [ "$(deno --version 2>/dev/null | head -n 1 | cut -d ' ' -f 2)" = "$version" ]; then
    deno="$(command -v deno)"
  fi
fi
if [ -z "$deno" ]; then
  deno="$(npx -y "deno@$version" eval 'console.log(Deno.execPath())' | tail -n 1)"
fi
exec "$deno" jupyter --kernel --conn "$1"
