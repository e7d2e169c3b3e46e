import { describe, expect, it } from "vitest";
import { median, medianOfSorted } from "../../src/math/median.js";

describe("median", () => {
  it("takes the middle value of an odd count and the mean of the middle two of an even one", () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(medianOfSorted([1, 2, 10])).toBe(2);
  });

  it("is NaN for no values and leaves its input unsorted", () => {
    expect(median([])).toBeNaN();
    const xs = [3, 1, 2];
    median(xs);
    expect(xs).toEqual([3, 1, 2]);
  });
});
