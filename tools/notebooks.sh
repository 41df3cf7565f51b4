#!/usr/bin/env bash
# deno task notebooks [notebook.ipynb ...]
# Executes the notebooks (default: every notebooks/*.ipynb) headless, top to bottom, with the
# repository's Deno kernel (kernels/deno, found through JUPYTER_PATH=<repo root>), and saves
# them in place with their outputs (tools/execute_notebook.py: nbconvert's executor, nbclient,
# made to keep outputs Deno's kernel publishes just after a cell's "idle"). Cell timings are not
# recorded, so re-running a notebook whose numbers did not change leaves it unchanged.
# The notebooks read the base model from data/base (LORALAB_BASE=<folder> for another one);
# chapters 4 and 5 train for LORALAB_NB_STEPS steps (default 30 in both: small, for the tests).
# Pass --cell-times to print each cell's seconds.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/tools/setup.sh" # installs Jupyter (Debian's packages) when missing
export JUPYTER_PATH="$root" PYDEVD_DISABLE_FILE_VALIDATION=1
cd "$root"
nbs=0
for a in "$@"; do case "$a" in *.ipynb) nbs=1 ;; esac; done
if [ "$nbs" = 0 ]; then set -- "$@" notebooks/*.ipynb; fi
/usr/bin/python3 tools/execute_notebook.py "$@" 2> >(grep -v 'is unstable and might change' >&2)
