/**
 * Neural-network ops: softmax, log-softmax, LayerNorm, embedding and cross-entropy (attention is
 * in `attention.ts`).
 *
 * @module
 */

import { record } from "../autograd/record.ts";
import { fmtShape, scope, Tensor } from "../tensor.ts";
import { exp, mul, scale, sub } from "./elementwise.ts";
import { mean, sum } from "./reduce.ts";
import { embeddingChunked } from "./split.ts";
import { needDtype, sameBackend } from "./util.ts";

/** Options of {@link softmax} and {@link logSoftmax}. */
export interface SoftmaxOptions {
  /**
   * Mask the future: the last two dims must be a square [T, T] block, and row t sees columns
   * 0..t only (masked entries are 0, or -inf for log-softmax).
   */
  causal?: boolean;
}

function softmaxImpl(name: string, a: Tensor, log: boolean, opts: SoftmaxOptions): Tensor {
  needDtype(name, a, "f32");
  if (a.ndim < 1) throw new RangeError(`${name}: needs at least 1 dim`);
  const cols = a.shape[a.ndim - 1];
  const causal = opts.causal ?? false;
  if (causal && (a.ndim < 2 || a.shape[a.ndim - 2] !== cols)) {
    throw new RangeError(`${name}: causal needs square [T, T] last dims, got ${fmtShape(a.shape)}`);
  }
  const rows = a.size / Math.max(cols, 1);
  const y = new Tensor(
    a.backend,
    a.backend.softmax(a.storage, rows, cols, log, causal),
    a.shape,
    "f32",
  );
  return record(y, [a], (g) =>
    scope(() => {
      if (log) {
        // dx = g - softmax(x) · Σ g. Masked outputs are constants (-inf): their g is dropped.
        const gm = causal ? mul(g, causalMask(a.backend, cols)) : g;
        return [sub(gm, mul(exp(y), sum(gm, -1, { keepDims: true })))];
      }
      // dx = y · (g - Σ g·y): one backend pass when it has one (the CPU's is bit-identical)
      if (a.backend.softmaxBackward) {
        const dx = a.backend.softmaxBackward(y.storage, g.storage, rows, cols);
        return [new Tensor(a.backend, dx, a.shape, "f32")];
      }
      return [mul(y, sub(g, sum(mul(g, y), -1, { keepDims: true })))];
    }));
}

/** [T, T] lower-triangular ones (1 where column ≤ row). */
function causalMask(dev: Tensor["backend"], T: number): Tensor {
  const m = new Float32Array(T * T);
  for (let r = 0; r < T; r++) for (let c = 0; c <= r; c++) m[r * T + c] = 1;
  return Tensor.fromArray(m, [T, T], { device: dev });
}

/** Softmax over the last axis. */
export function softmax(a: Tensor, opts: SoftmaxOptions = {}): Tensor {
  return softmaxImpl("softmax", a, false, opts);
}

/** Log-softmax over the last axis (computed stably, not as log(softmax)). */
export function logSoftmax(a: Tensor, opts: SoftmaxOptions = {}): Tensor {
  return softmaxImpl("logSoftmax", a, true, opts);
}

/** LayerNorm over the last axis: x: [..., C], gamma and beta: [C]. */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  sameBackend("layerNorm", x, gamma, beta);
  needDtype("layerNorm", x, "f32", "x");
  const C = x.shape[x.ndim - 1];
  for (const [n, t] of [["gamma", gamma], ["beta", beta]] as const) {
    needDtype("layerNorm", t, "f32", n);
    if (t.ndim !== 1 || t.shape[0] !== C) {
      throw new RangeError(`layerNorm: ${n} ${fmtShape(t.shape)} should be [${C}]`);
    }
  }
  const rows = x.size / C;
  const s = x.backend.layerNorm(x.storage, gamma.storage, beta.storage, rows, C, eps);
  const out = new Tensor(x.backend, s, x.shape, "f32");
  return record(out, [x, gamma, beta], (g, needs) => {
    // Frozen γ and β (LoRA, QLoRA) skip their column sums.
    const params = needs[1] || needs[2];
    const r = x.backend.layerNormBackward(
      x.storage,
      gamma.storage,
      g.storage,
      rows,
      C,
      eps,
      params,
    );
    const dx = new Tensor(x.backend, r.dx, x.shape, "f32");
    const wrap = (s: typeof r.dgamma) => (s ? new Tensor(x.backend, s, [C], "f32") : null);
    const grads = [dx, wrap(r.dgamma), wrap(r.dbeta)];
    grads.forEach((t, i) => !needs[i] && t?.dispose());
    return grads.map((t, i) => (needs[i] ? t : null));
  });
}

/**
 * Looks up rows of a [V, C] table: ids (i32, any shape) → [...ids.shape, C]. An id outside
 * [0, V) is an error on the CPU and a NaN row on WebGPU (kernels cannot throw).
 */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  sameBackend("embedding", ids, table);
  needDtype("embedding", ids, "i32", "ids");
  needDtype("embedding", table, "f32", "table");
  if (table.ndim !== 2) {
    throw new RangeError(`embedding: table ${fmtShape(table.shape)} is not 2-D`);
  }
  if (table.chunks) return embeddingChunked(ids, table);
  const [V, C] = table.shape;
  const s = ids.backend.embedding(ids.storage, table.storage, ids.size, V, C);
  const out = new Tensor(ids.backend, s, [...ids.shape, C], "f32");
  return record(out, [ids, table], (g, needs) => {
    if (needs[0]) throw new Error("autograd: embedding ids are integers and have no gradient");
    const gs = ids.backend.embeddingBackward(ids.storage, g.storage, ids.size, V, C);
    return [null, new Tensor(ids.backend, gs, [V, C], "f32")];
  });
}

/** The target that {@link crossEntropy} skips when told how many targets count (PyTorch's). */
export const IGNORE_INDEX: number = -100;

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /**
   * How many targets are not {@link IGNORE_INDEX} (the caller built the targets, so it knows;
   * the device never has to be asked). When given and smaller than the number of targets,
   * positions whose target is -100 add nothing to the loss and get zero gradient, and the loss is
   * the mean over the other `count` positions: Σ losses · (1 / count). `count` 0 (everything
   * masked) gives loss 0 and zero gradients, not NaN. When omitted or equal to the number of
   * targets, every target counts and -100 is an error (CPU) or NaN (WebGPU), exactly as without
   * options.
   */
  count?: number;
}

/**
 * Mean cross-entropy of logits [..., V] against integer targets [...] (i32). A target outside
 * [0, V) is an error on the CPU and gives NaN on WebGPU, except -100 ({@link IGNORE_INDEX}) when
 * `options.count` says how many targets are not -100: those positions are masked out of the mean
 * (see {@link CrossEntropyOptions}).
 */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor,
  options: CrossEntropyOptions = {},
): Tensor {
  const count = options.count;
  if (count !== undefined && !(Number.isInteger(count) && count >= 0 && count <= targets.size)) {
    throw new RangeError(
      `crossEntropy: count ${count} is not an integer in [0, ${targets.size}] (the targets)`,
    );
  }
  if (count === undefined || count === targets.size) {
    // Every target counts: the unmasked path, bit for bit what it always was.
    const rows = crossEntropyRows(logits, targets);
    const flat = rows.reshape([rows.size]);
    const m = mean(flat, 0);
    rows.dispose();
    flat.dispose();
    return m;
  }
  // Masked rows are 0 in `rows` and get no gradient; the sum then divides by the unmasked count.
  const rows = crossEntropyRows(logits, targets, { ignore: true });
  const flat = rows.reshape([rows.size]);
  const s = sum(flat, 0);
  const m = scale(s, count > 0 ? 1 / count : 0);
  for (const t of [rows, flat, s]) t.dispose();
  return m;
}

/** Options of {@link crossEntropyRows}. */
export interface CrossEntropyRowsOptions {
  /** Positions whose target is -100 ({@link IGNORE_INDEX}) give loss 0 and zero gradient. */
  ignore?: boolean;
}

/**
 * Per-position cross-entropy: logits [..., V], targets [...] → losses [...]. With `ignore`,
 * targets of -100 give 0 (see {@link CrossEntropyRowsOptions}).
 */
export function crossEntropyRows(
  logits: Tensor,
  targets: Tensor,
  options: CrossEntropyRowsOptions = {},
): Tensor {
  const ignore = options.ignore ?? false;
  sameBackend("crossEntropy", logits, targets);
  needDtype("crossEntropy", logits, "f32", "logits");
  needDtype("crossEntropy", targets, "i32", "targets");
  const V = logits.shape[logits.ndim - 1];
  const lead = logits.shape.slice(0, -1);
  if (fmtShape(lead) !== fmtShape(targets.shape)) {
    throw new RangeError(
      `crossEntropy: logits ${fmtShape(logits.shape)} and targets ${
        fmtShape(targets.shape)
      } disagree`,
    );
  }
  const rows = targets.size;
  const s = logits.backend.crossEntropy(logits.storage, targets.storage, rows, V, ignore);
  const out = new Tensor(logits.backend, s, lead, "f32");
  return record(out, [logits, targets], (g) => {
    const d = logits.backend.crossEntropyBackward(
      logits.storage,
      targets.storage,
      g.storage,
      rows,
      V,
      ignore,
    );
    return [new Tensor(logits.backend, d, logits.shape, "f32"), null];
  });
}
