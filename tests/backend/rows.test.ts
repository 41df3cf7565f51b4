// The WGSL row kernels (a workgroup per row, rows folded into y past 65,535 workgroups) against
// the CPU twins, on more rows than one grid dimension holds and on rows wider and narrower than
// the 64 threads that share a row.
import {
  cpu,
  crossEntropyRows,
  layerNorm,
  logSoftmax,
  Rng,
  softmax,
  sum,
  Tape,
  Tensor,
} from "../../lib/mod.ts";
import { assertClose, gpu, randData } from "../harness.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

// Both sides are float32 with different summation orders (tree vs sequential) and the GPU's exp
// and log: 1e-5 relative + 1e-5 absolute, as the op twins (tests/ops/twins.test.ts).
const tol = (want: ArrayLike<number>) => Array.from(want, (w) => 1e-5 + 1e-5 * Math.abs(w));

Deno.test(
  "row kernels: 65,537 rows (two grid rows) and wide rows match the CPU twins",
  opts,
  async () => {
    const g = await gpu();
    const rng = new Rng(5);
    for (const [rows, cols] of [[65537, 16], [5, 1000], [7, 64], [3, 65]]) {
      const x = randData(rng, rows * cols);
      const both = async (f: (t: Tensor) => Tensor) => {
        const [a, b] = await Promise.all(
          [cpu, g].map((d) => f(Tensor.fromArray(x, [rows, cols], { device: d })).toArray()),
        );
        return [b, a];
      };
      const what = `${rows}×${cols}`;
      let [got, want] = await both((t) => softmax(t));
      assertClose(got, want, tol(want), `softmax ${what}`);
      [got, want] = await both((t) => logSoftmax(t));
      assertClose(got, want, tol(want), `logSoftmax ${what}`);
      const gamma = randData(rng, cols), beta = randData(rng, cols);
      [got, want] = await both((t) => {
        const d = t.backend;
        return layerNorm(
          t,
          Tensor.fromArray(gamma, [cols], { device: d }),
          Tensor.fromArray(beta, [cols], { device: d }),
        );
      });
      assertClose(got, want, tol(want), `layerNorm ${what}`);
      const targets = Array.from({ length: rows }, () => rng.int(cols));
      const ce = (t: Tensor) =>
        crossEntropyRows(t, Tensor.fromArray(targets, [rows], { device: t.backend, dtype: "i32" }));
      [got, want] = await both(ce);
      assertClose(got, want, tol(want), `crossEntropy ${what}`);
      // Backward kernels: LayerNorm rows pass and cross-entropy, through the tape.
      const grads = async (d: typeof g) => {
        const t = Tensor.fromArray(x, [rows, cols], { device: d });
        const gm = Tensor.fromArray(gamma, [cols], { device: d });
        const bt = Tensor.fromArray(beta, [cols], { device: d });
        const tape = new Tape();
        tape.watch(t);
        const loss = tape.run(() => {
          return sum(ce(layerNorm(t, gm, bt)), 0);
        });
        return await tape.backward(loss).get(t)!.toArray();
      };
      const [gg, gc] = await Promise.all([grads(g), grads(cpu)]);
      assertClose(gg, gc, tol(gc), `d layerNorm→crossEntropy ${what}`);
    }
  },
);

Deno.test(
  "long-axis reductions (chunked on WebGPU) match the CPU: sum, mean, max, LayerNorm γ/β",
  opts,
  async () => {
    const g = await gpu();
    const rng = new Rng(6);
    // [outer, len, inner] with len ≥ 2048 takes the two-stage path; 5000 is not a multiple of the
    // 256-row chunks' count.
    for (const [outer, len, inner] of [[1, 5000, 7], [3, 2100, 2], [2, 4096, 1]]) {
      const x = randData(rng, outer * len * inner);
      for (const op of ["sum", "mean", "max"] as const) {
        const [got, want] = await Promise.all([g, cpu].map((d) =>
          d.read(
            d.reduce(op, d.upload("f32", Float32Array.from(x)), outer, len, inner),
            "f32",
            outer * inner,
          )
        ));
        // Float32 sums of n N(0,1) terms in two orders differ by about u·√(Σ_k k) ≈ u·n/√2 (2e-4
        // at n = 5000); we allow 1e-6·n (25× that) for sums, 1e-6 for means; max is exact.
        const t = op === "sum" ? 1e-6 * len : op === "mean" ? 1e-6 : 0;
        assertClose(got, want, t, `${op} over ${len} (${outer}×${len}×${inner})`);
      }
    }
    const [rows, cols] = [3000, 5];
    const x = randData(rng, rows * cols), gm = randData(rng, cols), dy = randData(rng, rows * cols);
    const [rg, rc] = [g, cpu].map((d) => {
      const up = (a: number[]) => d.upload("f32", Float32Array.from(a));
      return d.layerNormBackward(up(x), up(gm), up(dy), rows, cols, 1e-5);
    });
    for (const k of ["dgamma", "dbeta"] as const) {
      const [got, want] = await Promise.all([
        g.read(rg[k]!, "f32", cols),
        cpu.read(rc[k]!, "f32", cols),
      ]);
      assertClose(got, want, 1e-6 * rows, `layerNorm ${k} over ${rows} rows`);
    }
  },
);
