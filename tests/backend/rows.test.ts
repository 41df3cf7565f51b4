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
