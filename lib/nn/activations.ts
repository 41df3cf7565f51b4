/**
 * Activations. SiLU, x · σ(x), is one op (`ops/elementwise.ts`: CPU and WGSL twins, σ from
 * e^-|x| so nothing overflows): composed of exp/relu/div it kept ten intermediates per MLP for
 * the backward, 0.6 GB per step at TinyLlama's shape. This module re-exports it for the models.
 *
 * @module
 */

export { silu } from "../ops/elementwise.ts";
