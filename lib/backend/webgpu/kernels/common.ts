/**
 * WGSL shared by every kernel: the parameter block, its layouts, and the 1-D thread index.
 *
 * **Parameters are laid out once, beside their kernel.** Each dispatch gets up to
 * {@link PARAM_WORDS} u32 words in `params_` (binding 0). A kernel family's file describes the
 * words of each kernel with {@link paramLayout}, and that one description yields both halves:
 *
 * - the WGSL: `prelude(LAYOUT)` (the kernel's first line) declares one accessor per field,
 *   `p_<name>()` (`-> u32`, `-> f32` from the bit pattern, or `-> bool`), and `p_<name>(i)` for
 *   an array field (with `const p_<name>_len`). Kernels read their parameters only through these
 *   accessors, never by word number (`tests/backend/kernel_params.test.ts` checks it);
 * - the host side: `LAYOUT.pack({ name: value, … })`, exported by the family's file as the
 *   kernel's launcher `fooParams(p)` (typed by the layout: every field named, numbers for u32 and
 *   f32, booleans for flags, arrays of at most the field's length, padded with zeros). The backend
 *   calls the launcher: it never writes a word by number either.
 *
 * Renaming, reordering, adding or retyping a field therefore changes both at once. A kernel whose
 * dispatch size is its own exports `fooGroups(p)` beside it; 1-D kernels run 256 threads per
 * workgroup and may fold their workgroups into y (see `groups1d`), so `gidx` rebuilds the flat
 * index.
 *
 * @module
 */

import { f32Bits, PARAM_WORDS } from "../engine.ts";

/**
 * How a parameter travels: one u32 word, an f32 (its bit pattern), a flag (0 or 1, read as a WGSL
 * `bool`), or a fixed number of u32 / f32 words (`["u32", 6]`).
 */
export type ParamType = "u32" | "f32" | "bool" | readonly ["u32" | "f32", number];

/** The host value of a parameter of type `T`: a number, a boolean, or an array of numbers. */
export type ParamValue<T extends ParamType> = T extends "bool" ? boolean
  : T extends "u32" | "f32" ? number
  : readonly number[];

/** The host values of every field of a layout (what its launcher takes). */
export type ParamValues<F extends Record<string, ParamType>> = {
  readonly [K in keyof F]: ParamValue<F[K]>;
};

/** One field of a layout, placed. */
export interface ParamSlot {
  /** The field's name (the WGSL accessor is `p_<name>`). */
  readonly name: string;
  /** The word type. */
  readonly type: "u32" | "f32" | "bool";
  /** First word. */
  readonly at: number;
  /** Words of an array field, or null for a single word. */
  readonly count: number | null;
}

/** A kernel's parameter words: the WGSL accessors and the host packer, from one description. */
export interface ParamLayout<F extends Record<string, ParamType> = Record<string, ParamType>> {
  /** The fields, in word order. */
  readonly slots: readonly ParamSlot[];
  /** Words the layout uses (≤ {@link PARAM_WORDS}). */
  readonly words: number;
  /** WGSL: one accessor per field (`fn p_<name>() -> u32 { return pu(0u); }` and so on). */
  readonly wgsl: string;
  /** The words of one dispatch, in the order the accessors read them. */
  pack(values: ParamValues<F>): number[];
}

const NAME = /^[A-Za-z][A-Za-z0-9]*$/;

/**
 * The layout of `fields`, in the order written: single fields take one word, array fields their
 * length. Throws on a name that is not a plain identifier or past {@link PARAM_WORDS} words.
 *
 * ```ts
 * const UNARY = paramLayout({ n: "u32", alpha: "f32" });
 * // WGSL: `${prelude(UNARY)}` … `if (i >= p_n()) { return; }` … `x * p_alpha()`
 * // host: engine.run(k, buffers, UNARY.pack({ n, alpha }), groups1d(n))
 * ```
 */
export function paramLayout<const F extends Record<string, ParamType>>(fields: F): ParamLayout<F> {
  const slots: ParamSlot[] = [];
  const lines: string[] = [];
  let at = 0;
  for (const [name, t] of Object.entries(fields)) {
    if (!NAME.test(name)) throw new Error(`paramLayout: '${name}' is not a plain identifier`);
    if (typeof t === "string") {
      slots.push({ name, type: t, at, count: null });
      const read = t === "f32" ? `pf(${at}u)` : t === "bool" ? `pu(${at}u) != 0u` : `pu(${at}u)`;
      lines.push(`fn p_${name}() -> ${t} { return ${read}; }`);
      at += 1;
    } else {
      const [type, count] = t;
      if (!(Number.isInteger(count) && count >= 1)) {
        throw new Error(`paramLayout: '${name}' has ${count} words`);
      }
      slots.push({ name, type, at, count });
      lines.push(
        `const p_${name}_len: u32 = ${count}u;`,
        `fn p_${name}(i: u32) -> ${type} { return ${type === "f32" ? "pf" : "pu"}(${at}u + i); }`,
      );
      at += count;
    }
  }
  if (at > PARAM_WORDS) {
    throw new Error(`paramLayout: ${at} words, the parameter block holds ${PARAM_WORDS}`);
  }
  const words = at;
  return {
    slots,
    words,
    wgsl: lines.join("\n"),
    pack(values: ParamValues<F>): number[] {
      const v = values as Record<string, unknown>;
      const out = new Array<number>(words).fill(0);
      for (const s of slots) {
        const x = v[s.name];
        if (s.count === null) {
          if (s.type === "bool" ? typeof x !== "boolean" : typeof x !== "number") {
            throw new TypeError(`kernel params: '${s.name}' is ${typeof x}, expected ${s.type}`);
          }
          out[s.at] = s.type === "f32"
            ? f32Bits(x as number)
            : s.type === "bool"
            ? +x!
            : x as number;
        } else {
          const xs = x as readonly number[] | undefined;
          if (!Array.isArray(xs) || xs.length > s.count) {
            throw new RangeError(
              `kernel params: '${s.name}' needs an array of at most ${s.count} numbers`,
            );
          }
          for (let i = 0; i < xs.length; i++) {
            out[s.at + i] = s.type === "f32" ? f32Bits(xs[i]) : xs[i];
          }
        }
      }
      return out;
    },
  };
}

/** What a layout's launcher takes: `ParamsOf<typeof FOO_PARAMS>`. */
export type ParamsOf<L> = L extends ParamLayout<infer F> ? ParamValues<F> : never;

/** The layout of kernels whose only parameter is the element count `n`. */
export const N_PARAMS: ParamLayout<{ n: "u32" }> = paramLayout({ n: "u32" });
/** Launcher of the kernels laid out by {@link N_PARAMS}. */
export function nParams(p: ParamsOf<typeof N_PARAMS>): number[] {
  return N_PARAMS.pack(p);
}

// The parameter block and its raw word readers (used only by the accessors of a layout).
const PARAM_BLOCK = /* wgsl */ `
struct Params { v: array<vec4<u32>, 8> }
@group(0) @binding(0) var<uniform> params_: Params;
fn pu(i: u32) -> u32 { return params_.v[i / 4u][i % 4u]; }
fn pf(i: u32) -> f32 { return bitcast<f32>(pu(i)); }
`;

/** Index helpers and constants every kernel may use. */
const HELPERS =
  /* wgsl */ `fn gidx(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.y * nwg.x * 256u + gid.x; }
fn neg_inf() -> f32 { return bitcast<f32>(0xff800000u); }
fn nan() -> f32 { return bitcast<f32>(0x7fc00000u); }
`;

/**
 * The head of every kernel: the parameter block, the accessors of the kernel's layout, and the
 * index helpers.
 */
export function prelude(params: ParamLayout): string {
  return `${PARAM_BLOCK}${params.wgsl}\n${HELPERS}`;
}

/** Entry-point header of a 1-D kernel with 256 threads per workgroup. */
export const MAIN_1D = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>)`;
