/**
 * All forward ops, on either backend.
 *
 * @module
 */

export * from "./matmul.ts";
export * from "./elementwise.ts";
export * from "./reduce.ts";
export * from "./shape.ts";
export * from "./nn.ts";
export * from "./attention.ts";
export * from "./broadcast.ts";

import { installTapeHelpers } from "../autograd/tape.ts";
import { Tensor } from "../tensor.ts";
import { add } from "./elementwise.ts";
installTapeHelpers(
  add,
  (t) => Tensor.fromArray(new Float32Array(t.size).fill(1), t.shape, { device: t.backend }),
);
export * from "./dropout.ts";
export * from "./abs.ts";
