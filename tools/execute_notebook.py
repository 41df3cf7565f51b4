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
so nothing from another cell can be mixed in). Measured here (2026-11-28, four notebooks run
twice): late messages came 0.2-4 ms after "idle"; the grace is 0.25 s (--idle-grace), paid
once per code cell. tests/notebooks compares each cell's outputs with the committed notebook,
so a dropped output fails the tests.
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

    idle_grace = Float(0.25, help="seconds to keep reading a cell's outputs after idle").tag(
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

    cell_seconds = None  # filled with (index, seconds) pairs when --cell-times is given

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        start = time.monotonic()
        try:
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            if self.cell_seconds is not None and cell.cell_type == "code":
                self.cell_seconds.append((cell_index, time.monotonic() - start))


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
    ap.add_argument("--idle-grace", type=float, default=0.25,
                    help="seconds to wait for a cell's outputs after idle (default 0.25)")
    ap.add_argument("--cell-times", action="store_true", help="print each code cell's seconds")
    args = ap.parse_args()
    for path in args.notebooks:
        start = time.monotonic()
        nb = nbformat.read(path, as_version=4)
        client = DrainingClient(
            nb,
            kernel_name=args.kernel,
            timeout=args.timeout,
            record_timing=False,
            idle_grace=args.idle_grace,
            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
        )
        if args.cell_times:
            client.cell_seconds = []
        client.execute()
        for index, seconds in client.cell_seconds or []:
            print(f"{path}: cell {index}: {seconds:.1f} s", file=sys.stderr)
        coalesce_streams(nb)
        out = os.path.join(args.output_dir, os.path.basename(path)) if args.output_dir else path
        nbformat.write(nb, out)
        print(f"{path}: {time.monotonic() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
