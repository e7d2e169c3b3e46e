import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { grouped } from "../../src/math/digits.js";

describe("grouped", () => {
  it("writes integers as toLocaleString('en-US') does", () => {
    fc.assert(fc.property(fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), (n) => grouped(n) === n.toLocaleString("en-US")));
    for (const n of [0, 7, 999, 1000, 1048576, 16777216, -1234]) expect(grouped(n)).toBe(n.toLocaleString("en-US"));
  });

  it("rounds a non-integer first, as the tokens/s columns want", () => {
    expect(grouped(69893.6)).toBe("69,894");
    expect(grouped(-0.4)).toBe("0");
  });
});
