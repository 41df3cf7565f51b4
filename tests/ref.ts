/**
 * Float64 reference math, written independently of lib/ (plain nested loops over number[]),
 * used as ground truth for both backends.
 */

/** out[b] = op(A[b])·op(B[b]) + bias; also returns Σ|a||b| per element for error bounds. */
export function matmulRef(
  a: number[],
  b: number[],
  bias: number[] | null,
  batch: number,
  M: number,
  N: number,
  K: number,
  transA: boolean,
  transB: boolean,
  strideA: number,
  strideB: number,
): { out: number[]; absDot: number[] } {
  const out: number[] = [], absDot: number[] = [];
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = bias ? bias[j] : 0, sa = bias ? Math.abs(bias[j]) : 0;
        for (let k = 0; k < K; k++) {
          const x = transA ? a[z * strideA + k * M + i] : a[z * strideA + i * K + k];
          const y = transB ? b[z * strideB + j * K + k] : b[z * strideB + k * N + j];
          s += x * y;
          sa += Math.abs(x * y);
        }
        out.push(s);
        absDot.push(sa);
      }
    }
  }
  return { out, absDot };
}

/** GELU (tanh form) in float64. */
export function geluRef(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

/** Index of a multi-index in a row-major shape. */
export function ravel(idx: number[], shape: number[]): number {
  let o = 0;
  for (let d = 0; d < shape.length; d++) o = o * shape[d] + idx[d];
  return o;
}

/** Multi-index of flat index i in a row-major shape. */
export function unravel(i: number, shape: number[]): number[] {
  const idx = new Array(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

/** Numpy broadcasting binary op in float64. */
export function broadcastRef(
  f: (x: number, y: number) => number,
  a: number[],
  as: number[],
  b: number[],
  bs: number[],
): { out: number[]; shape: number[] } {
  const n = Math.max(as.length, bs.length);
  const pa = [...new Array(n - as.length).fill(1), ...as];
  const pb = [...new Array(n - bs.length).fill(1), ...bs];
  const shape = pa.map((x, i) => Math.max(x, pb[i]));
  const total = shape.reduce((x, y) => x * y, 1);
  const out: number[] = [];
  for (let i = 0; i < total; i++) {
    const idx = unravel(i, shape);
    const ia = ravel(idx.map((v, d) => (pa[d] === 1 ? 0 : v)), pa);
    const ib = ravel(idx.map((v, d) => (pb[d] === 1 ? 0 : v)), pb);
    out.push(f(a[ia], b[ib]));
  }
  return { out, shape };
}

/** Row softmax / log-softmax in float64 with optional causal mask over [T, T] blocks. */
export function softmaxRef(a: number[], rows: number, cols: number, log: boolean, causal: boolean) {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    const last = causal ? r % cols : cols - 1;
    const row = a.slice(r * cols, r * cols + last + 1);
    const m = Math.max(...row);
    const z = row.reduce((s, x) => s + Math.exp(x - m), 0);
    for (let c = 0; c < cols; c++) {
      if (c > last) out.push(log ? -Infinity : 0);
      else out.push(log ? a[r * cols + c] - m - Math.log(z) : Math.exp(a[r * cols + c] - m) / z);
    }
  }
  return out;
}

/** LayerNorm in float64. */
export function layerNormRef(
  x: number[],
  g: number[],
  b: number[],
  rows: number,
  C: number,
  eps: number,
) {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = x.slice(r * C, (r + 1) * C);
    const mu = row.reduce((s, v) => s + v, 0) / C;
    const v = row.reduce((s, x) => s + (x - mu) ** 2, 0) / C;
    for (let c = 0; c < C; c++) out.push(((row[c] - mu) / Math.sqrt(v + eps)) * g[c] + b[c]);
  }
  return out;
}

/**
 * The nearest number with `mant` fraction bits (exponent ≥ `emin`: subnormals below) to x,
 * ties to even, in float64 arithmetic (exact: scaling by powers of two).
 */
export function rneTo(x: number, mant: number, emin: number): number {
  if (x === 0) return 0;
  let e = Math.floor(Math.log2(Math.abs(x)));
  while (2 ** (e + 1) <= Math.abs(x)) e++;
  while (2 ** e > Math.abs(x)) e--;
  const ulp = 2 ** (Math.max(e, emin) - mant);
  const q = x / ulp, fl = Math.floor(q);
  const n = q - fl === 0.5 ? (fl % 2 === 0 ? fl : fl + 1) : Math.round(q);
  return n * ulp;
}
