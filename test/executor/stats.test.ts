import { describe, expect, it } from "vitest";
import { expectedMaxOfNormals, mean, normalCdf, pooledLogSd, upperMedian } from "../../src/executor/measure/stats.js";

describe("mean", () => {
  it("is the sum over the count, NaN for no samples", () => {
    expect(mean([1, 2, 6])).toBe(3);
    expect(mean([])).toBeNaN();
  });
});

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

describe("pooledLogSd", () => {
  it("pools each group's log deviations about its own mean, one degree of freedom per group", () => {
    const e = Math.E;
    // logs [0, 1] (squares 0.25 + 0.25) and [2, 4] (1 + 1): 2.5 over 4 - 2 degrees of freedom.
    expect(pooledLogSd([[1, e], [e ** 2, e ** 4]])).toBeCloseTo(Math.sqrt(1.25), 12);
    // A group's scale does not matter, only its spread: the same spread at 1000x the time.
    expect(pooledLogSd([[1000, 1000 * e]])).toBeCloseTo(pooledLogSd([[1, e]]), 12);
  });

  it("ignores groups of fewer than two and is 0 with nothing to pool", () => {
    expect(pooledLogSd([[5], [1, Math.E]])).toBeCloseTo(Math.sqrt(0.5), 12);
    expect(pooledLogSd([[3]])).toBe(0);
    expect(pooledLogSd([])).toBe(0);
  });
});

describe("normal distribution helpers", () => {
  it("normalCdf matches tabulated values", () => {
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(normalCdf(1)).toBeCloseTo(0.8413447, 6);
    expect(normalCdf(-1.96)).toBeCloseTo(0.0249979, 6);
  });

  it("expectedMaxOfNormals: 0 for one, 1/sqrt(pi) for two, the tabulated order statistics beyond", () => {
    expect(expectedMaxOfNormals(1)).toBe(0);
    expect(expectedMaxOfNormals(2)).toBeCloseTo(1 / Math.sqrt(Math.PI), 5);
    // Expected largest of n standard normals (Harter 1961): 3 -> 0.8463, 4 -> 1.0294, 8 -> 1.4236.
    expect(expectedMaxOfNormals(3)).toBeCloseTo(0.8463, 3);
    expect(expectedMaxOfNormals(4)).toBeCloseTo(1.0294, 3);
    expect(expectedMaxOfNormals(8)).toBeCloseTo(1.4236, 3);
  });
});
