// Input checks: clear messages naming the problem.
import assert from "node:assert/strict";
import { checkFinite, checkShape, roundHalfAway } from "../../lib/quant/check.ts";

Deno.test("checkShape: returns numel, rejects bad dims and mismatched lengths", () => {
  assert.equal(checkShape("f", [3, 4], 12), 12);
  assert.throws(
    () => checkShape("f", [3, 4], 11),
    /f: shape \[3,4\] has 12 elements but weights has 11/,
  );
  assert.throws(() => checkShape("f", [3, 0], 0), /positive integers/);
  assert.throws(() => checkShape("f", [2.5], 2), /positive integers/);
  assert.throws(() => checkShape("f", [], 1), /at least one dimension/);
});

Deno.test("checkFinite: names the first NaN or infinite weight", () => {
  const w = new Float32Array(20).map((_, i) => i / 7);
  checkFinite("g", w);
  w[17] = NaN;
  w[18] = Infinity;
  assert.throws(() => checkFinite("g", w), { message: "g: weight 17 is NaN" });
  w[17] = 1;
  assert.throws(() => checkFinite("g", w), { message: "g: weight 18 is Infinity" });
  w[18] = -Infinity;
  assert.throws(() => checkFinite("g", w), { message: "g: weight 18 is -Infinity" });
});

Deno.test("roundHalfAway: symmetric rounding", () => {
  assert.equal(roundHalfAway(2.5), 3);
  assert.equal(roundHalfAway(-2.5), -3);
  assert.equal(roundHalfAway(0.49), 0);
  assert.equal(roundHalfAway(-126.5), -127);
  assert.equal(roundHalfAway(-0.2), -0);
});
