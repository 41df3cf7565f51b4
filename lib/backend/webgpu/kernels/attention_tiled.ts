/**
 * WGSL fused causal self-attention, FlashAttention-2-style tiles: the same three kernels as
 * `attention.ts` (forward; backward `dq` then `dkv`), twins of `attentionForwardCpu` and
 * `attentionBackwardCpu` in `lib/backend/cpu/attention.ts`, with the work spread over blocks of
 * rows instead of one row per thread.
 *
 * The row kernels of `attention.ts` give each thread a whole query (or key) row and its
 * accumulators: 2–4 head rows of registers (256 floats for dk, dv, k, v at hd = 64, which spill
 * on a GPU) and one workgroup-memory read per multiply–add. Here a workgroup of 128 threads (or
 * 64, see {@link AttentionTileConfig}) owns a block of rows; every product is a small matmul over
 * tiles staged in workgroup memory, and a thread keeps a micro-tile of outputs (rows `ty + GY·a`,
 * columns `tx + 8c` with `ty = t / 8`, `tx = t % 8`, GY = threads / 8), so each value read from
 * workgroup memory feeds several multiply–adds:
 *
 * - forward, per key tile: S = Q Kᵀ (Br × Bc), then the online softmax per row (running max m,
 *   sum l, rescale factor) by one thread per row, then O = O·corr + P V (Br × hd).
 * - `dq`, per key tile: S and dP = dY Vᵀ together, dS = P ∘ (dP − D) with P = exp(S − lse), then
 *   dQ += dS K. It also writes D_i = dy_i · y_i for `dkv`.
 * - `dkv`, per query tile (from the block's first key on: earlier queries see none of its keys):
 *   S, dP and dS as in `dq`, then dV += Pᵀ dY and dK += dSᵀ Q.
 *
 * Tiles are sized by {@link attentionTileConfig} to the device's workgroup memory. Head rows are
 * staged as vec4s (the head width padded with zeros to a multiple of 32), with an odd vec4 row
 * stride so that reads across rows fall in different banks; score products read a vec4 of each
 * operand per 4 multiply–adds. Blocks of keys after a query block's last row are skipped, so the
 * causal half of the scores is never computed.
 *
 * @module
 */

import type { Kernel } from "../engine.ts";
import { ATTENTION_PARAMS, BWD_KV_BINDINGS, BWD_Q_BINDINGS, FWD_BINDINGS } from "./attention.ts";
import { prelude } from "./common.ts";

/** Row counts of one tiled kernel: Br query rows and Bc key rows per tile (multiples of 16). */
export interface TileShape {
  /** Query rows per tile. */
  br: number;
  /** Key rows per tile. */
  bc: number;
}

/** The tile shapes of the three kernels for one head width. */
export interface AttentionTileConfig {
  /** Threads per workgroup: 128 (a 16 × 8 grid) or 64 (8 × 8, twice the outputs per thread). */
  threads: 64 | 128;
  /** Head width padded to a multiple of 32. */
  hp: number;
  /** Forward: Br query rows per workgroup, Bc keys per tile. */
  fwd: TileShape;
  /** Backward dq: Br query rows per workgroup, Bc keys per tile. */
  dq: TileShape;
  /** Backward dk/dv: Bc key rows per workgroup, Br queries per tile. */
  dkv: TileShape;
}

/** Widest head the tiled kernels take (beyond it the row kernels run). */
export const TILED_MAX_HD = 128;

// Tile shapes by preference: more rows per workgroup first (each staged tile then serves more
// outputs), within the workgroup memory. The forward and dq kernels own Br query rows, dkv Bc
// keys. Shapes that a smaller one always beats on bytes (16/32 for rows, 32/16 for keys) are left
// out, and so are shapes that no 32 KiB device fits (32/64 for keys): the tests run every listed
// shape on lavapipe.
const ROW_SHAPES: TileShape[] = [
  { br: 64, bc: 32 },
  { br: 32, bc: 32 },
  { br: 32, bc: 16 },
  { br: 16, bc: 16 },
];
const KEY_SHAPES: TileShape[] = [
  { br: 32, bc: 32 },
  { br: 16, bc: 32 },
  { br: 16, bc: 16 },
];

/** Workgroup bytes of the forward kernel: Q, K, V tiles, the score tile, 3 row statistics. */
export function fwdBytes(hp: number, s: TileShape): number {
  return 4 * ((s.br + 2 * s.bc) * (hp + 4) + s.br * (s.bc + 1) + 3 * s.br);
}
/** Workgroup bytes of the dq kernel: Q, dY, K, V tiles, the dS tile, lse and D per row. */
export function dqBytes(hp: number, s: TileShape): number {
  return 4 * ((2 * s.br + 2 * s.bc) * (hp + 4) + s.br * (s.bc + 1) + 2 * s.br);
}
/** Workgroup bytes of the dkv kernel: K, V, Q, dY tiles, the P and dS tiles, lse and D. */
export function dkvBytes(hp: number, s: TileShape): number {
  return 4 * ((2 * s.br + 2 * s.bc) * (hp + 4) + 2 * s.br * (s.bc + 1) + 2 * s.br);
}

/**
 * The largest tiles of each kernel that fit `maxBytes` of workgroup memory for head width `hd`,
 * with `threads` per workgroup, or null when the head is wider than {@link TILED_MAX_HD} or some
 * kernel fits no tile.
 */
export function attentionTileConfig(
  hd: number,
  maxBytes: number,
  threads: 64 | 128 = 128,
): AttentionTileConfig | null {
  if (!(hd >= 1 && hd <= TILED_MAX_HD)) return null;
  if (threads !== 64 && threads !== 128) {
    throw new RangeError(`attention tiles: ${threads} threads (64 or 128)`);
  }
  const hp = Math.ceil(hd / 32) * 32;
  const pick = (shapes: TileShape[], bytes: (hp: number, s: TileShape) => number) =>
    shapes.find((s) => bytes(hp, s) <= maxBytes) ?? null;
  const fwd = pick(ROW_SHAPES, fwdBytes);
  const dq = pick(ROW_SHAPES, dqBytes);
  const dkv = pick(KEY_SHAPES, dkvBytes);
  return fwd && dq && dkv ? { threads, hp, fwd, dq, dkv } : null;
}

// Constants and helpers shared by the three kernels; params: ATTENTION_PARAMS, as for the row
// kernels (launcher attentionParams, dispatch attentionGroups(p, the tile's rows)). [rows, HP] tiles hold vec4s along the head
// (HV per row, stride SV = HV + 1: odd, so reads across rows fall in different banks).
const HEAD = (hd: number, { hp, threads }: AttentionTileConfig, s: TileShape, gy = threads / 8) =>
  `${prelude(ATTENTION_PARAMS)}
const HD: u32 = ${hd}u;
const HV: u32 = ${hp / 4}u;     // vec4s per head row (head width padded to a multiple of 32)
const SV: u32 = ${hp / 4 + 1}u; // vec4 row stride of the [rows, HP] tiles
const BR: u32 = ${s.br}u;
const BC: u32 = ${s.bc}u;
const BS: u32 = ${s.bc + 1}u;   // row stride of the [BR, BC] score tiles
const NT: u32 = ${gy * 8}u;     // threads: a GY × 8 grid, ty = t / 8, tx = t % 8
const GY: u32 = ${gy}u;       // (register tiles are unrolled in TypeScript, see each() below)
fn rowBase(b: u32, t: u32, T: u32, h: u32) -> u32 { return (b * T + t) * p_rowStride() + h * HD; }
`;

// Stages rows r0 … r0+N-1 of head h of X (its element base(r) per row) into a [N, SV] vec4 tile,
// scaled by sc; zeros past T and past HD.
const stage = (fn: string, X: string, tile: string, n: string, base: string) => /* wgsl */ `
fn ${fn}(r0: u32, b: u32, h: u32, T: u32, t: u32, sc: f32) {
  for (var e = t; e < ${n} * HV; e += NT) {
    let r = e / HV;
    let d = (e % HV) * 4u;
    var x = vec4<f32>();
    if (r0 + r < T) {
      let o = ${base};
      if (d < HD) { x[0] = ${X}[o + d]; }
      if (d + 1u < HD) { x[1] = ${X}[o + d + 1u]; }
      if (d + 2u < HD) { x[2] = ${X}[o + d + 2u]; }
      if (d + 3u < HD) { x[3] = ${X}[o + d + 3u]; }
    }
    ${tile}[r * SV + e % HV] = x * sc;
  }
}`;
const QKV_BASE = (w: string) => `${w} + rowBase(b, r0 + r, T, h)`;
const DY_BASE = "(b * T + r0 + r) * p_nHead() * HD + h * HD";
// The staging functions of a kernel: stageQ (BR rows), stageK and stageV (BC rows), and stageDY
// (BR rows) when `dy`.
const STAGES = (dy: boolean) =>
  [
    stage("stageQ", "Q", "Qs", "BR", QKV_BASE("p_qOff()")),
    stage("stageK", "K", "Ks", "BC", QKV_BASE("p_kOff()")),
    stage("stageV", "V", "Vs", "BC", QKV_BASE("p_vOff()")),
    ...(dy ? [stage("stageDY", "DY", "DYs", "BR", DY_BASE)] : []),
  ].join("\n");

// The entry point, with what every kernel derives: thread t (grid row ty, column tx), T, nh,
// C = nh·HD, and this workgroup's batch b and head h.
const MAIN = (threads: number) => /* wgsl */ `
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = lid.x;
  let ty = t / 8u;
  let tx = t % 8u;
  let T = p_T();
  let nh = p_nHead();
  let C = nh * HD;
  let b = wg.y / nh;
  let h = wg.y % nh;`;

// Register tiles are named variables, not arrays: the loops over a thread's rows (a) and columns
// (c) are unrolled here, in TypeScript, as the matmul kernels do, so every register index is a
// constant in the WGSL. (A private array indexed by loop counters may live in a GPU's local
// memory instead of registers.) `each(n, f)` joins f(0) … f(n-1).
const each = (n: number, f: (i: number) => string, sep = "\n") =>
  Array.from({ length: n }, (_, i) => f(i)).join(sep);
// Declares `name_a_c` for a < rows, c < cols, of type `ty` (zero).
const regs = (name: string, rows: number, cols: number, ty: string) =>
  each(rows, (a) => each(cols, (c) => `  var ${name}_${a}_${c} = ${ty}();`));

// S = Qs Ksᵀ and dP = DYs Vsᵀ on this thread's ra × cb micro-tile (rows ty + GY·a of the query
// tile, columns tx + 8c of the key tile), then dS = P ∘ (dP − D) with P = exp(S − lse) and the
// causal mask; writes dS to DSs and, when `keepP`, P to Ps.
const SCORES = (ra: number, cb: number, gy: number, keepP: boolean) => /* wgsl */ `
  {
${regs("s", ra, cb, "f32")}
${regs("dp", ra, cb, "f32")}
    for (var d = 0u; d < HV; d++) {
${each(ra, (a) => `      let qa${a} = Qs[(ty + ${gy * a}u) * SV + d];`)}
${each(ra, (a) => `      let ga${a} = DYs[(ty + ${gy * a}u) * SV + d];`)}
${
  each(cb, (c) =>
    `      {
        let kv = Ks[(tx + ${8 * c}u) * SV + d];
        let vv = Vs[(tx + ${8 * c}u) * SV + d];
${
      each(ra, (a) =>
        `        s_${a}_${c} += dot(qa${a}, kv);
        dp_${a}_${c} += dot(ga${a}, vv);`)
    }
      }`)
}
    }
${
  each(ra, (a) =>
    `    {
      let r = ty + ${gy * a}u;
      let i = i0 + r;
${
      each(cb, (c) =>
        `      {
        let cc = tx + ${8 * c}u;
        var p = 0.0;
        if (j0 + cc <= i && i < T) { p = exp(s_${a}_${c} - Lr[r]); }
        DSs[r * BS + cc] = p * (dp_${a}_${c} - Dr[r]);
        ${keepP ? "Ps[r * BS + cc] = p;" : ""}
      }`)
    }
    }`)
}
  }`;

// Adds the [rows, BK] scalar tile A (row stride BS) times the [BK, SV] vec4 tile X to the
// registers acc_a_c (rows ty + GY·a, vec4 columns tx + 8c); `at(a)` is A's element (row a, k).
const PRODUCT = (
  acc: string,
  rows: number,
  hb: number,
  bk: string,
  at: (a: number) => string,
  X: string,
) => /* wgsl */ `
    for (var k = 0u; k < ${bk}; k++) {
${each(rows, (a) => `      let xa${a} = ${at(a)};`)}
${
  each(hb, (c) =>
    `      {
        let xv = ${X}[k * SV + tx + ${8 * c}u];
${each(rows, (a) => `        ${acc}_${a}_${c} = fma(vec4<f32>(xa${a}), xv, ${acc}_${a}_${c});`)}
      }`)
}
    }`;

// Writes the registers acc_a_c (rows ty + GY·a of a block starting at r0, vec4 columns
// tx + 8c), times sc, to X at element base(i) + d for each row i < T and d < HD.
const WRITE = (
  acc: string,
  rows: number,
  hb: number,
  gy: number,
  r0: string,
  X: string,
  base: string,
  sc: string,
) =>
  each(rows, (a) => /* wgsl */ `
  {
    let i = ${r0} + ty + ${gy * a}u;
    if (i < T) {
${
    each(hb, (c) =>
      `      {
        let d = (tx + ${8 * c}u) * 4u;
        let v = ${acc}_${a}_${c} * ${sc};
        let o = ${base} + d;
${each(4, (u) => `        if (d + ${u}u < HD) { ${X}[o + ${u}u] = v[${u}]; }`)}
      }`)
  }
    }
  }`);

/**
 * Forward. Bindings: Q, K, V (read-only, may be one buffer), Y [B, T, nh·hd], L [B, nh, T].
 * params: `ATTENTION_PARAMS`. Dispatch: `attentionGroups(p, br)`.
 */
export function attentionTiledForwardKernel(hd: number, cfg: AttentionTileConfig): Kernel {
  const s = cfg.fwd;
  const sv = cfg.hp / 4 + 1;
  const gy = cfg.threads / 8, ra = s.br / gy, cb = s.bc / 8, hb = cfg.hp / 32;
  return {
    key: `attn_tiled_fwd:${hd}:${cfg.hp}:${s.br}x${s.bc}:t${cfg.threads}`,
    code: `${HEAD(hd, cfg, s)}
${FWD_BINDINGS}
var<workgroup> Qs: array<vec4<f32>, ${s.br * sv}>; // scaled q rows
var<workgroup> Ks: array<vec4<f32>, ${s.bc * sv}>;
var<workgroup> Vs: array<vec4<f32>, ${s.bc * sv}>;
var<workgroup> Ss: array<f32, ${s.br * (s.bc + 1)}>; // scores, then probabilities
var<workgroup> Ms: array<f32, ${s.br}>; // running max per row
var<workgroup> Ls: array<f32, ${s.br}>; // running sum per row
var<workgroup> Cs: array<f32, ${s.br}>; // this tile's rescale factor per row
${STAGES(false)}
${MAIN(cfg.threads)}
  let i0 = wg.x * BR;
  stageQ(i0, b, h, T, t, p_scale());
  if (t < BR) { Ms[t] = -1e30; Ls[t] = 0.0; }
${regs("o", ra, hb, "vec4<f32>")} // rows ty + GY·a, vec4 columns tx + 8c
  let kEnd = min(T, i0 + BR); // keys any row of this block sees
  for (var j0 = 0u; j0 < kEnd; j0 += BC) {
    stageK(j0, b, h, T, t, 1.0);
    stageV(j0, b, h, T, t, 1.0);
    workgroupBarrier();
    {
${regs("s", ra, cb, "f32")}
      for (var d = 0u; d < HV; d++) {
${each(ra, (a) => `        let qa${a} = Qs[(ty + ${gy * a}u) * SV + d];`)}
${
      each(cb, (c) =>
        `        {
          let kv = Ks[(tx + ${8 * c}u) * SV + d];
${each(ra, (a) => `          s_${a}_${c} += dot(qa${a}, kv);`)}
        }`)
    }
      }
${
      each(ra, (a) =>
        each(cb, (c) => `      Ss[(ty + ${gy * a}u) * BS + tx + ${8 * c}u] = s_${a}_${c};`))
    }
    }
    workgroupBarrier();
    if (t < BR) { // online softmax of row t over this tile's visible keys j0 … min(i, last)
      let i = i0 + t;
      var n = 0u;
      if (i < T && i >= j0) { n = min(BC, i + 1u - j0); }
      let m = Ms[t];
      var mb = m;
      for (var jj = 0u; jj < n; jj++) { mb = max(mb, Ss[t * BS + jj]); }
      let corr = exp(m - mb);
      var l = Ls[t] * corr;
      for (var jj = 0u; jj < BC; jj++) {
        var p = 0.0;
        if (jj < n) { p = exp(Ss[t * BS + jj] - mb); }
        l += p;
        Ss[t * BS + jj] = p;
      }
      Ms[t] = mb;
      Ls[t] = l;
      Cs[t] = corr;
    }
    workgroupBarrier();
${
      each(ra, (a) =>
        `    {
      let corr = Cs[ty + ${gy * a}u];
${each(hb, (c) => `      o_${a}_${c} *= corr;`)}
    }`)
    }
${PRODUCT("o", ra, hb, "BC", (a) => `Ss[(ty + ${gy * a}u) * BS + k]`, "Vs")}
    workgroupBarrier();
  }
${
      each(ra, (a) =>
        `  {
    let l = Ls[ty + ${gy * a}u]; // o / l
${each(hb, (c) => `    o_${a}_${c} /= l;`)}
  }`)
    }
${WRITE("o", ra, hb, gy, "i0", "Y", "(b * T + i) * C + h * HD", "1.0")}
  if (t < BR && i0 + t < T) { L[wg.y * T + i0 + t] = Ms[t] + log(Ls[t]); }
}`,
  };
}

/**
 * Backward, part 1 (run first). Bindings: Q, K, V, Y, DY (read-only), LSE, DQKV (dq written into
 * columns [0, C) of the [B, T, 3C] gradient), Dv (D_i written, [B, nh, T]).
 * params: `ATTENTION_PARAMS`. Dispatch: `attentionGroups(p, br)`.
 */
export function attentionTiledBackwardQKernel(hd: number, cfg: AttentionTileConfig): Kernel {
  const s = cfg.dq;
  const sv = cfg.hp / 4 + 1;
  const gy = cfg.threads / 8, ra = s.br / gy, cb = s.bc / 8, hb = cfg.hp / 32;
  return {
    key: `attn_tiled_bwd_q:${hd}:${cfg.hp}:${s.br}x${s.bc}:t${cfg.threads}`,
    code: `${HEAD(hd, cfg, s)}
${BWD_Q_BINDINGS}
var<workgroup> Qs: array<vec4<f32>, ${s.br * sv}>; // scaled q rows
var<workgroup> DYs: array<vec4<f32>, ${s.br * sv}>;
var<workgroup> Ks: array<vec4<f32>, ${s.bc * sv}>;
var<workgroup> Vs: array<vec4<f32>, ${s.bc * sv}>;
var<workgroup> DSs: array<f32, ${s.br * (s.bc + 1)}>;
var<workgroup> Lr: array<f32, ${s.br}>;
var<workgroup> Dr: array<f32, ${s.br}>;
${STAGES(true)}
${MAIN(cfg.threads)}
  let i0 = wg.x * BR;
  stageQ(i0, b, h, T, t, p_scale());
  stageDY(i0, b, h, T, t, 1.0);
  if (t < BR) {
    let i = i0 + t;
    var Di = 0.0;
    var lse = 0.0;
    if (i < T) {
      let yb = (b * T + i) * C + h * HD;
      for (var d = 0u; d < HD; d++) { Di = fma(DY[yb + d], Y[yb + d], Di); }
      lse = LSE[wg.y * T + i];
      Dv[wg.y * T + i] = Di;
    }
    Lr[t] = lse;
    Dr[t] = Di;
  }
${regs("dq", ra, hb, "vec4<f32>")}
  let kEnd = min(T, i0 + BR);
  for (var j0 = 0u; j0 < kEnd; j0 += BC) {
    stageK(j0, b, h, T, t, 1.0);
    stageV(j0, b, h, T, t, 1.0);
    workgroupBarrier();
${SCORES(ra, cb, gy, false)}
    workgroupBarrier();
${PRODUCT("dq", ra, hb, "BC", (a) => `DSs[(ty + ${gy * a}u) * BS + k]`, "Ks")}
    workgroupBarrier();
  }
${WRITE("dq", ra, hb, gy, "i0", "DQKV", "(b * T + i) * 3u * C + h * HD", "p_scale()")}
}`,
  };
}

/**
 * Backward, part 2 (after part 1, which wrote D). Bindings: Q, K, V, DY, LSE, Dv (read-only),
 * DQKV (dk into columns [C, 2C), dv into [2C, 3C)). params: `ATTENTION_PARAMS`.
 * Dispatch: `attentionGroups(p, bc)`.
 */
export function attentionTiledBackwardKVKernel(hd: number, cfg: AttentionTileConfig): Kernel {
  const s = cfg.dkv;
  const sv = cfg.hp / 4 + 1;
  const gy = cfg.threads / 8, ra = s.br / gy, ca = s.bc / gy, cb = s.bc / 8, hb = cfg.hp / 32;
  return {
    key: `attn_tiled_bwd_kv:${hd}:${cfg.hp}:${s.br}x${s.bc}:t${cfg.threads}`,
    code: `${HEAD(hd, cfg, s)}
${BWD_KV_BINDINGS}
var<workgroup> Ks: array<vec4<f32>, ${s.bc * sv}>;
var<workgroup> Vs: array<vec4<f32>, ${s.bc * sv}>;
var<workgroup> Qs: array<vec4<f32>, ${s.br * sv}>; // scaled q rows
var<workgroup> DYs: array<vec4<f32>, ${s.br * sv}>;
var<workgroup> Ps: array<f32, ${s.br * (s.bc + 1)}>;
var<workgroup> DSs: array<f32, ${s.br * (s.bc + 1)}>;
var<workgroup> Lr: array<f32, ${s.br}>;
var<workgroup> Dr: array<f32, ${s.br}>;
${STAGES(true)}
${MAIN(cfg.threads)}
  let j0 = wg.x * BC;
  stageK(j0, b, h, T, t, 1.0);
  stageV(j0, b, h, T, t, 1.0);
${regs("dk", ca, hb, "vec4<f32>")} // key rows ty + GY·a, vec4 columns tx + 8c
${regs("dv", ca, hb, "vec4<f32>")}
  // Queries before this block's first key see none of its keys.
  for (var i0 = (j0 / BR) * BR; i0 < T; i0 += BR) {
    stageQ(i0, b, h, T, t, p_scale());
    stageDY(i0, b, h, T, t, 1.0);
    if (t < BR) {
      var lse = 0.0;
      var Di = 0.0;
      if (i0 + t < T) { lse = LSE[wg.y * T + i0 + t]; Di = Dv[wg.y * T + i0 + t]; }
      Lr[t] = lse;
      Dr[t] = Di;
    }
    workgroupBarrier();
${SCORES(ra, cb, gy, true)}
    workgroupBarrier();
${PRODUCT("dv", ca, hb, "BR", (a) => `Ps[k * BS + ty + ${gy * a}u]`, "DYs")}
${PRODUCT("dk", ca, hb, "BR", (a) => `DSs[k * BS + ty + ${gy * a}u]`, "Qs")}
    workgroupBarrier();
  }
${WRITE("dk", ca, hb, gy, "j0", "DQKV", "(b * T + i) * 3u * C + C + h * HD", "1.0")}
${WRITE("dv", ca, hb, gy, "j0", "DQKV", "(b * T + i) * 3u * C + 2u * C + h * HD", "1.0")}
}`,
  };
}

/** Environment variable that picks the fused attention kernels: `auto` (default) or `rows`. */
export const ATTENTION_KERNELS_ENV = "LORALAB_ATTENTION_KERNELS";

/**
 * The kernels named by `LORALAB_ATTENTION_KERNELS`: `"auto"` when it is unset, empty or not
 * readable (no `--allow-env`; never prompts). Throws on any other value than `auto` or `rows`.
 */
export function attentionKernelsFromEnv(): "auto" | "rows" {
  const perm = Deno.permissions.querySync({ name: "env", variable: ATTENTION_KERNELS_ENV });
  if (perm.state !== "granted") return "auto";
  const v = Deno.env.get(ATTENTION_KERNELS_ENV);
  if (v === undefined || v === "" || v === "auto") return "auto";
  if (v === "rows") return "rows";
  throw new Error(`${ATTENTION_KERNELS_ENV}=${v}: expected "auto" or "rows"`);
}
