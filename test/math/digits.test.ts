import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { counted, grouped } from "../../src/math/digits.js";

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

describe("counted", () => {
  it("says one in the singular and any other count in the plural", () => {
    expect(counted(1, "layer")).toBe("1 layer");
    expect(counted(8, "layer")).toBe("8 layers");
    expect(counted(0, "step")).toBe("0 steps");
    expect(counted(1, "micro-batch", "micro-batches")).toBe("1 micro-batch");
    expect(counted(4, "micro-batch", "micro-batches")).toBe("4 micro-batches");
  });
});
