/**
 * The TypeScript twin of the SIMD kernel `rows` (`qmatvec_simd.ts`) and the inputs both take:
 * the code table's byte planes and x de-interleaved. Same f32 products and sums, in the same
 * order per lane, so the same bits (`Math.fround` after each step: f64 holds each f32 product
 * exactly and rounds each f32 sum once more without changing it, since 53 ≥ 2·24 + 2).
 *
 * @module
 */

const fr = Math.fround;

/** The 16 code values' f32 bytes as 4 planes: out[16j + c] = byte j of code[c] (64 bytes). */
export function codePlanes(code: Float32Array, out: Uint8Array): void {
  const bytes = new Uint8Array(Float32Array.from(code).buffer);
  for (let c = 0; c < 16; c++) for (let j = 0; j < 4; j++) out[16 * j + c] = bytes[4 * c + j];
}

/** x [K] (K even) as [x0, x2, …, x_{K-2}, x1, x3, …, x_{K-1}] into out [K]. */
export function deinterleave(x: Float32Array, x0: number, K: number, out: Float32Array): void {
  const P = K >>> 1;
  for (let p = 0; p < P; p++) {
    out[p] = x[x0 + 2 * p];
    out[P + p] = x[x0 + 2 * p + 1];
  }
}

/**
 * For rows n in [n0, n1): out[n] = Σ_b f64(blockSum_b) · absmax[b], blockSum as the SIMD
 * kernel sums it (16 lanes, then (acc0 + acc1) + (acc2 + acc3), then (l0 + l2) + (l1 + l3)).
 *
 * @param code Float32Array [16] the code table
 * @param xd Float32Array [K] x de-interleaved ({@link deinterleave})
 * @param codes Uint8Array of the packed codes (P bytes per row)
 * @param amax Float32Array [numBlocks] absmax per block (already rebuilt from double quant)
 * @param out Float64Array [N]
 */
export function rowsSimdTs(
  code: Float32Array,
  xd: Float32Array,
  codes: Uint8Array,
  amax: Float32Array,
  out: Float64Array,
  P: number,
  hb: number,
  n0: number,
  n1: number,
): void {
  const acc = new Float32Array(16);
  for (let n = n0; n < n1; n++) {
    let s = 0, b = (n * P) / hb;
    for (let j = 0; j < P; j += hb, b++) {
      acc.fill(0);
      for (let c = j; c < j + hb; c += 16) {
        const t = n * P + c;
        for (let i = 0; i < 16; i++) acc[i] = fr(acc[i] + fr(code[codes[t + i] & 15] * xd[c + i]));
        for (let i = 0; i < 16; i++) {
          acc[i] = fr(acc[i] + fr(code[codes[t + i] >>> 4] * xd[P + c + i]));
        }
      }
      const l = [0, 1, 2, 3].map((i) => fr(fr(acc[i] + acc[4 + i]) + fr(acc[8 + i] + acc[12 + i])));
      s += fr(fr(l[0] + l[2]) + fr(l[1] + l[3])) * amax[b];
    }
    out[n] = s;
  }
}
