/**
 * A tiny seeded random number generator for tests and error studies: mulberry32 for
 * uniforms, Box-Muller for normals. Not cryptographic; not exported from `mod.ts`.
 *
 * @module
 */

/**
 * mulberry32: a 32-bit state PRNG. Returns a function giving uniforms in [0, 1).
 *
 * @param seed any integer; the same seed gives the same sequence.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * n samples of N(0, std^2) as f32, by Box-Muller on mulberry32 uniforms.
 *
 * @returns Float32Array [n]
 */
export function randn(n: number, seed: number, std = 1): Float32Array {
  const uniform = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = 1 - uniform(); // (0, 1]: log is finite
    const u2 = uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = std * r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = std * r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}
