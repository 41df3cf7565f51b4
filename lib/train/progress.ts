/**
 * Progress reporting: one updating line on a terminal, plain periodic lines otherwise (CI logs,
 * notebooks).
 *
 * @module
 */

/** Formats seconds as `1h02m`, `3m05s` or `12s`. */
export function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h
    ? `${h}h${String(m).padStart(2, "0")}m`
    : m
    ? `${m}m${String(r).padStart(2, "0")}s`
    : `${r}s`;
}

/** Step progress with ETA. */
export class Progress {
  private t0 = performance.now();
  private lastPrint = 0;
  private shown = false;
  private readonly tty: boolean;

  /**
   * `total` steps; on a non-terminal prints at most every `everySeconds` (default 10). Lines go
   * to stdout, or to stderr with `stream: "stderr"` (commands whose stdout is for results). With
   * `onlyIfSlow`, nothing is shown until the work has taken `everySeconds` (short work stays
   * silent; long evaluation or sampling shows its ETA). `unit` names what is counted: `step`
   * (the default) prints `step 3/10`, anything else `3/10 MB`.
   */
  constructor(
    readonly total: number,
    readonly label = "",
    readonly everySeconds = 10,
    readonly stream: "stdout" | "stderr" = "stdout",
    readonly onlyIfSlow = false,
    readonly unit = "step",
  ) {
    let tty = false;
    try {
      tty = (stream === "stderr" ? Deno.stderr : Deno.stdout).isTerminal();
    } catch {
      tty = false;
    }
    this.tty = tty;
  }

  /** Reports step `step` (1-based) with extra fields; `force` prints even between intervals. */
  update(step: number, fields: Record<string, string | number>, force = false): void {
    const el = (performance.now() - this.t0) / 1000;
    if (this.onlyIfSlow && !this.shown) {
      if (el < this.everySeconds || step === this.total) return;
      this.shown = true;
    }
    const eta = step > 0 ? (el / step) * (this.total - step) : NaN;
    const f = Object.entries(fields)
      .map(([k, v]) => `${k} ${typeof v === "number" ? fmtNum(v) : v}`)
      .join(" | ");
    const count = this.unit === "step"
      ? `step ${step}/${this.total}`
      : `${step}/${this.total} ${this.unit}`;
    const line = `${this.label}${count} | ${f ? `${f} | ` : ""}${fmtDuration(el)} elapsed, ETA ${
      fmtDuration(eta)
    }`;
    const out = this.stream === "stderr" ? Deno.stderr : Deno.stdout;
    if (this.tty) {
      out.writeSync(new TextEncoder().encode(`\r\x1b[K${line}`));
      if (force || step === this.total) out.writeSync(new TextEncoder().encode("\n"));
    } else if (force || step === this.total || el - this.lastPrint >= this.everySeconds) {
      this.lastPrint = el;
      if (this.stream === "stderr") console.error(line);
      else console.log(line);
    }
  }
}

/** A model load's progress, as lib/io's `LoadProgress` reports it after each tensor. */
export interface LoadReport {
  /** Parameters loaded so far. */
  tensors: number;
  /** Parameters to load. */
  totalTensors: number;
  /** Stored bytes read so far. */
  bytes: number;
  /** Stored bytes to read. */
  totalBytes: number;
  /** Seconds spent quantizing so far. */
  quantizeSeconds: number;
}

/**
 * A progress callback for loading a model (`HfLoadOptions.onProgress` of lib/io): silent when
 * the load is quick; for a big checkpoint, a line every 10 s with the megabytes read, the
 * tensors, the time spent quantizing and the ETA (by bytes).
 */
export function loadProgress(
  label = "loading weights ",
  stream: "stdout" | "stderr" = "stdout",
  everySeconds = 10,
): (p: LoadReport) => void {
  let bar: Progress | null = null;
  return (p) => {
    const total = Math.max(1, Math.round(p.totalBytes / 1e6));
    bar ??= new Progress(total, label, everySeconds, stream, true, "MB");
    const done = p.bytes >= p.totalBytes ? total : Math.min(total - 1, Math.round(p.bytes / 1e6));
    bar.update(done, {
      tensors: `${p.tensors}/${p.totalTensors}`,
      ...(p.quantizeSeconds > 0 ? { quantizing: fmtDuration(p.quantizeSeconds) } : {}),
    });
  };
}

function fmtNum(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100
    ? v.toFixed(0)
    : Math.abs(v) >= 0.01
    ? v.toFixed(4)
    : v.toExponential(2);
}
