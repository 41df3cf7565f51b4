#!/usr/bin/env bash
# deno task notebook [jupyter notebook options]
# A notebook server on 127.0.0.1 for notebooks/, with the repository's Deno kernel
# (kernels/deno, found through JUPYTER_PATH=<repo root>; nothing is installed into ~).
# LORALAB_PLOTLY=inline makes the first figure of a kernel session embed plotly.js (from npm's
# plotly.js-dist-min, put into node_modules/ by `deno install`), so figures are interactive in
# this classic notebook, offline.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/tools/setup.sh" # installs Jupyter (Debian's packages) when missing
if [ ! -f "$root/node_modules/plotly.js-dist-min/plotly.min.js" ] && command -v deno >/dev/null; then
  (cd "$root" && deno install) || echo "notebook: deno install failed; figures stay static" >&2
fi
export JUPYTER_PATH="$root" LORALAB_PLOTLY=inline PYDEVD_DISABLE_FILE_VALIDATION=1
extra=()
if [ "$(id -u)" = "0" ]; then extra+=(--allow-root); fi # containers often run as root
exec /usr/bin/jupyter notebook --ip 127.0.0.1 --no-browser --notebook-dir "$root/notebooks" \
  "${extra[@]}" "$@"
