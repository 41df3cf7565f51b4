import assert from "node:assert/strict";

// Each case runs in a fresh Deno process so that getDevice's per-process cache and the
// environment variable are both really exercised.
async function pick(
  env: Record<string, string>,
  prelude = "",
): Promise<{ code: number; out: string; err: string }> {
  const code = `${prelude}import { getDevice } from "${
    new URL("../../lib/mod.ts", import.meta.url).href
  }";
const d = await getDevice(); console.log(d.kind + "|" + d.description);`;
  const p = new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    env,
    stdout: "piped",
    stderr: "piped",
  });
  const r = await p.output();
  return {
    code: r.code,
    out: new TextDecoder().decode(r.stdout).trim(),
    err: new TextDecoder().decode(r.stderr),
  };
}

Deno.test("LORALAB_BACKEND=cpu forces the CPU backend and says so", async () => {
  const r = await pick({ LORALAB_BACKEND: "cpu" });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^cpu\|/);
  assert.match(r.err, /loralab: backend cpu/);
});

Deno.test("LORALAB_BACKEND=webgpu uses an adapter (software allowed) and names it", async () => {
  const r = await pick({ LORALAB_BACKEND: "webgpu" });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^webgpu\|./);
  assert.match(r.err, /loralab: backend webgpu \(/);
});

Deno.test("auto falls back to the CPU when there is no adapter", async () => {
  const r = await pick({}, "navigator.gpu.requestAdapter = () => Promise.resolve(null);\n");
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^cpu\|/);
});

Deno.test("auto never picks a software adapter", async () => {
  const r = await pick({});
  assert.equal(r.code, 0, r.err);
  const [kind, desc] = r.out.split("|");
  if (kind === "webgpu") assert.doesNotMatch(desc, /llvmpipe|lavapipe|swiftshader/i);
});

Deno.test("a bad LORALAB_BACKEND is a clear error", async () => {
  const r = await pick({ LORALAB_BACKEND: "tpu" });
  assert.notEqual(r.code, 0);
  assert.match(r.err, /LORALAB_BACKEND=tpu: expected cpu, webgpu or auto/);
});

Deno.test("forcing webgpu with no adapter is a clear error", async () => {
  // A machine without drivers: requestAdapter() answers null.
  const r = await pick(
    { LORALAB_BACKEND: "webgpu" },
    "navigator.gpu.requestAdapter = () => Promise.resolve(null);\n",
  );
  assert.notEqual(r.code, 0);
  assert.match(r.err, /no WebGPU adapter is available/);
});
