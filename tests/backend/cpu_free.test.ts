import assert from "node:assert/strict";
import {
  CpuBackend,
  type CpuStorage,
  EAGER_FREE_BYTES,
} from "../../lib/backend/cpu/cpu_backend.ts";
import { Tensor } from "../../lib/tensor.ts";
import { Rng } from "../../lib/mod.ts";
import { randData } from "../harness.ts";

const dev = new CpuBackend();
const dataOf = (t: Tensor) => (t.storage as CpuStorage).data;

Deno.test("cpu free: a big tensor's memory is released at dispose, after its last view", () => {
  const n = EAGER_FREE_BYTES / 4 + 3; // just over the threshold
  const a = Tensor.fromArray(randData(new Rng(1), n), [n], { device: dev });
  const view = a.reshape([1, n]);
  const d = dataOf(a);
  assert.equal(d.length, n);
  a.dispose();
  assert.equal(d.length, n, "a reshape view still uses the storage");
  view.dispose();
  assert.equal(d.length, 0, "the last view's dispose detaches the buffer");
  assert.equal((d.buffer as ArrayBuffer).detached, true);
});

Deno.test("cpu free: small tensors are left to the garbage collector; values stay intact until dispose", async () => {
  const vals = randData(new Rng(2), 100);
  const s = Tensor.fromArray(vals, [100], { device: dev });
  const d = dataOf(s);
  assert.deepEqual(Array.from(await s.toArray()), vals.map(Math.fround));
  s.dispose();
  assert.equal(d.length, 100); // below EAGER_FREE_BYTES: not detached
});
