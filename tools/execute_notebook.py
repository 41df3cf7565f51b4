#!/usr/bin/python3
"""Executes Jupyter notebooks headless with the repository's Deno kernel and saves them.

    /usr/bin/python3 tools/execute_notebook.py [--output-dir DIR] [--timeout S] NB.ipynb...

Without --output-dir each notebook is saved in place. JUPYTER_PATH must name the repository
root (kernels/deno/kernel.json); `deno task notebooks` and tests/notebooks set it.

Why not plain `jupyter nbconvert --execute`: nbconvert (nbclient) stops collecting a cell's
outputs at the kernel's "idle" status, and Deno's kernel (2.9.6) sometimes publishes a cell's
last stream or execute_result message just after "idle": nbconvert then drops it, about one
output per notebook run here. This runs the same nbclient, but keeps reading the cell's
messages for a short grace period after "idle" (the next cell is not sent before that ends,
so nothing from another cell can be mixed in).
"""

import argparse
import os
import sys
import time
from queue import Empty

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete
from nbclient.util import ensure_async
from traitlets import Float


class DrainingClient(NotebookClient):
    """nbclient's NotebookClient, also collecting a cell's outputs published after "idle"."""

    idle_grace = Float(0.5, help="seconds to keep reading a cell's outputs after idle").tag(
        config=True
    )

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        assert self.kc is not None
        idle = False
        while True:
            try:
                msg = await ensure_async(
                    self.kc.iopub_channel.get_msg(timeout=self.idle_grace if idle else None)
                )
            except Empty:
                return  # quiet for idle_grace seconds after idle: the cell is complete
            if msg["parent_header"].get("msg_id") != parent_msg_id:
                continue
            try:
                self.process_message(msg, cell, cell_index)
            except CellExecutionComplete:
                idle = True


def coalesce_streams(nb) -> None:
    """Merges consecutive stream outputs of one cell to the same stream (as nbconvert does)."""
    for cell in nb.cells:
        merged = []
        for out in cell.get("outputs", []):
            prev = merged[-1] if merged else None
            if (out.output_type == "stream" and prev is not None
                    and prev.output_type == "stream" and prev.name == out.name):
                prev.text += out.text
            else:
                merged.append(out)
        if "outputs" in cell:
            cell.outputs = merged


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--output-dir", help="write executed copies here (default: in place)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    ap.add_argument("--kernel", default="deno")
    args = ap.parse_args()
    for path in args.notebooks:
        start = time.monotonic()
        nb = nbformat.read(path, as_version=4)
        client = DrainingClient(
            nb,
            kernel_name=args.kernel,
            timeout=args.timeout,
            record_timing=False,
            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
        )
        client.execute()
        coalesce_streams(nb)
        out = os.path.join(args.output_dir, os.path.basename(path)) if args.output_dir else path
        nbformat.write(nb, out)
        print(f"{path}: {time.monotonic() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
