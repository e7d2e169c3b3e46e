import { describe, expect, it } from "vitest";
import { upperMedian } from "../../src/executor/measure/stats.js";

describe("upperMedian", () => {
  it("takes the middle sample of an odd count, whatever the order", () => {
    expect(upperMedian([9, 1, 5])).toBe(5);
  });

  it("takes the upper of the two middle samples of an even count: a value that was observed", () => {
    expect(upperMedian([4, 1, 3, 2])).toBe(3);
    expect(upperMedian([0.001, 10])).toBe(10);
  });

  it("is 0 for no samples and leaves its input unsorted", () => {
    expect(upperMedian([])).toBe(0);
    const xs = [3, 1, 2];
    upperMedian(xs);
    expect(xs).toEqual([3, 1, 2]);
  });
});
