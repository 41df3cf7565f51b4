#!/usr/bin/python3
"""Exports notebooks to HTML with nbconvert and checks each page in headless Chromium.

    /usr/bin/python3 tools/check_notebook_html.py [--keep DIR] [--screenshots] [NB.ipynb ...]

Default: every notebooks/*.ipynb, as committed (with their outputs). For each notebook:

1. `/usr/bin/jupyter nbconvert --to html` (Debian's defaults: require.js and MathJax from local
   files under /usr/share/javascript, so the page needs no network);
2. the page is put where it would sit in the repository, `<tmp>/notebooks/NAME.html`, next to a
   copy of npm's plotly.js at `<tmp>/node_modules/plotly.js-dist-min/plotly.min.js`, which is
   where a figure's HTML output loads plotly.js from (lib/viz/plotly.ts: relative URLs, no CDN);
3. a small recorder is inserted at the top of <head>: every error event (uncaught exceptions and
   resources that fail to load), unhandled promise rejections and console.error calls, and, a
   moment after the load event, the number of figures (`.loralab-figure`) and of figures that
   plotly.js drew (an `svg.main-svg` with a drawn trace layer inside);
4. Chromium loads it (`--headless --dump-dom`, virtual time so the timers run) and the recorder's
   JSON is read back from the dumped DOM.

A page passes when it has no errors and every figure in the notebook's outputs was drawn by
plotly.js. Exit status 0 when every page passes, 1 otherwise; 2 when Chromium or nbconvert is
missing. Needs Debian's `chromium` (not installed by tools/setup.sh: about 300 MB).
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"
JUPYTER = "/usr/bin/jupyter"
PLOTLY = os.path.join(ROOT, "node_modules", "plotly.js-dist-min", "plotly.min.js")

RECORDER = """<script>(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && (t.src || t.href)) errors.push("failed to load " + (t.src || t.href));
    else errors.push("uncaught: " + (e.message || String(e.error)));
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    errors.push("unhandled rejection: " + (e.reason && e.reason.message || String(e.reason)));
  });
  var ce = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return ce.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    setTimeout(function () {
      var figs = document.querySelectorAll(".loralab-figure"), drawn = 0, notDrawn = [];
      for (var i = 0; i < figs.length; i++) {
        var svg = figs[i].querySelector("svg.main-svg");
        var traces = figs[i].querySelectorAll(".cartesianlayer .trace, .cartesianlayer .hm");
        if (svg && traces.length > 0) drawn++;
        else notDrawn.push(figs[i].id);
      }
      var pre = document.createElement("pre");
      pre.id = "loralab-html-check";
      pre.textContent = JSON.stringify({
        errors: errors,
        figures: figs.length,
        drawn: drawn,
        notDrawn: notDrawn,
        plotly: window.Plotly ? window.Plotly.version : null
      });
      document.body.appendChild(pre);
    }, 2000);
  });
})();</script>"""


def expected_figures(nb_path: str) -> int:
    """Figures in the notebook's outputs: `class="loralab-figure"` in text/html outputs."""
    with open(nb_path, encoding="utf-8") as f:
        nb = json.load(f)
    n = 0
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            html = out.get("data", {}).get("text/html")
            if html is not None:
                n += "".join(html).count('class="loralab-figure"')
    return n


def check(nb_path: str, work: str, screenshots: bool) -> tuple[bool, str]:
    name = os.path.splitext(os.path.basename(nb_path))[0]
    pages = os.path.join(work, "notebooks")
    r = subprocess.run(
        [JUPYTER, "nbconvert", "--to", "html", "--output-dir", pages, nb_path],
        capture_output=True, text=True, env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
    )
    if r.returncode != 0:
        return False, f"{name}: nbconvert failed:\n{r.stderr[-2000:]}"
    page = os.path.join(pages, name + ".html")
    with open(page, encoding="utf-8") as f:
        html = f.read()
    html = re.sub(r"<head>", lambda m: m.group(0) + "\n" + RECORDER, html, count=1)
    with open(page, "w", encoding="utf-8") as f:
        f.write(html)
    profile = tempfile.mkdtemp(prefix="chromium-", dir=work)
    args = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--user-data-dir=" + profile, "--virtual-time-budget=20000", "--window-size=1280,2000",
    ]
    r = subprocess.run(args + ["--dump-dom", "file://" + page], capture_output=True, text=True,
                       timeout=180)
    m = re.search(r'<pre id="loralab-html-check">(.*?)</pre>', r.stdout, re.S)
    if not m:
        return False, f"{name}: no check result in the dumped DOM (chromium exit {r.returncode}):\n" \
            + r.stderr[-2000:]
    res = json.loads(m.group(1).replace("&quot;", '"').replace("&lt;", "<")
                     .replace("&gt;", ">").replace("&amp;", "&"))
    want = expected_figures(nb_path)
    ok = (not res["errors"] and res["figures"] == want and res["drawn"] == want
          and (want == 0 or res["plotly"]))
    line = (f"{name}.html: {res['figures']} of {want} figures in the page, {res['drawn']} drawn "
            f"by plotly.js {res['plotly']}, {len(res['errors'])} errors")
    if res["errors"]:
        line += "\n  " + "\n  ".join(res["errors"][:20])
    if res["notDrawn"]:
        line += "\n  not drawn: " + ", ".join(res["notDrawn"][:20])
    if screenshots:
        shot = os.path.join(pages, name + ".png")
        subprocess.run(args + ["--window-size=1280,6000", "--screenshot=" + shot, "file://" + page],
                       capture_output=True, timeout=180)
        line += f"\n  screenshot: {shot}"
    shutil.rmtree(profile, ignore_errors=True)
    return bool(ok), line


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="*")
    ap.add_argument("--keep", help="write the pages here (default: a temporary folder, removed)")
    ap.add_argument("--screenshots", action="store_true", help="also save a PNG of each page")
    args = ap.parse_args()
    for tool in (CHROMIUM, JUPYTER):
        if not os.path.exists(tool):
            print(f"check_notebook_html: {tool} is missing (apt-get install chromium / "
                  "jupyter-nbconvert)", file=sys.stderr)
            return 2
    if not os.path.exists(PLOTLY):
        print(f"check_notebook_html: {PLOTLY} is missing: run `deno install`", file=sys.stderr)
        return 2
    notebooks = args.notebooks or sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
    work = args.keep or tempfile.mkdtemp(prefix="loralab-html-")
    os.makedirs(os.path.join(work, "node_modules", "plotly.js-dist-min"), exist_ok=True)
    shutil.copyfile(PLOTLY, os.path.join(work, "node_modules", "plotly.js-dist-min",
                                         "plotly.min.js"))
    failed = 0
    try:
        for nb in notebooks:
            ok, line = check(os.path.abspath(nb), work, args.screenshots)
            print(("ok   " if ok else "FAIL ") + line)
            failed += not ok
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{len(notebooks) - failed} of {len(notebooks)} pages pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
