/**
 * WGSL shared by every kernel: the parameter block and the 1-D thread index.
 *
 * Parameters arrive as 32 u32 words in `params_` (binding 0); `pu(i)` reads word i, `pf(i)` reads it
 * as an f32 bit pattern. 1-D kernels run 256 threads per workgroup and may fold their
 * workgroups into y (see `groups1d`), so `gidx` rebuilds the flat index.
 *
 * @module
 */

/** The parameter block and index helpers, prepended to every kernel. */
export const PRELUDE = /* wgsl */ `
struct Params { v: array<vec4<u32>, 8> }
@group(0) @binding(0) var<uniform> params_: Params;
fn pu(i: u32) -> u32 { return params_.v[i / 4u][i % 4u]; }
fn pf(i: u32) -> f32 { return bitcast<f32>(pu(i)); }
fn gidx(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.y * nwg.x * 256u + gid.x; }
fn neg_inf() -> f32 { return bitcast<f32>(0xff800000u); }
fn nan() -> f32 { return bitcast<f32>(0x7fc00000u); }
`;

/** Entry-point header of a 1-D kernel with 256 threads per workgroup. */
export const MAIN_1D = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>)`;
