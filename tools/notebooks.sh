#!/usr/bin/env bash
# deno task notebooks [notebook.ipynb ...]
# Executes the notebooks (default: every notebooks/*.ipynb) headless, top to bottom, with the
# repository's Deno kernel (kernels/deno, found through JUPYTER_PATH=<repo root>), and saves
# them in place with their outputs. Cell timings are not recorded, so re-running a notebook
# whose numbers did not change leaves it unchanged.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/tools/setup.sh" # installs Jupyter (Debian's packages) when missing
export JUPYTER_PATH="$root" PYDEVD_DISABLE_FILE_VALIDATION=1
cd "$root"
if [ $# -eq 0 ]; then set -- notebooks/*.ipynb; fi
for nb in "$@"; do
  start=$(date +%s.%N)
  /usr/bin/jupyter nbconvert --to notebook --execute --inplace \
    --ExecutePreprocessor.kernel_name=deno --ExecutePreprocessor.timeout=600 \
    --ExecutePreprocessor.record_timing=False "$nb" 2>&1 |
    grep -v -e 'is unstable and might change' -e '^\[NbConvertApp\] Writing' >&2 || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "notebooks: $nb failed" >&2; exit 1; }
  printf '%s: %.1f s\n' "$nb" "$(echo "$(date +%s.%N) - $start" | bc)"
done
