import { describe, expect, it } from "vitest";
import { mulberry32 } from "../../src/executor/model/random.js";
import { expectedMaxOfNormals, mean, medianInterval, normalCdf, pooledLogSd, upperMedian } from "../../src/executor/measure/stats.js";

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

describe("medianInterval", () => {
  // Coverage 1 - 2 P(Binomial(n, 1/2) <= k - 1), counted by hand: n = 12, k = 3: 1 - 2 (1 + 12 + 66) / 4096.
  it("takes the order statistics whose binomial coverage first reaches the confidence asked for", () => {
    const xs = [12, 3, 7, 1, 10, 5, 9, 2, 11, 4, 8, 6]; // 1..12 shuffled
    const i = medianInterval(xs)!;
    expect([i.low, i.high]).toEqual([3, 10]);
    expect(i.confidence).toBeCloseTo(1 - (2 * 79) / 4096, 12);
    // k = 4 would cover 1 - 2 (79 + 220) / 4096 = 0.854 only; at 0.85 it is taken.
    const narrower = medianInterval(xs, 0.85)!;
    expect([narrower.low, narrower.high]).toEqual([4, 9]);
    expect(narrower.confidence).toBeCloseTo(1 - (2 * 299) / 4096, 12);
  });

  it("gives 9 samples x(2) to x(8), 0.961, the textbook value", () => {
    const i = medianInterval([9, 8, 7, 6, 5, 4, 3, 2, 1])!;
    expect([i.low, i.high, Number(i.confidence.toFixed(4))]).toEqual([2, 8, 0.9609]);
  });

  it("falls back to the whole range, with its smaller coverage, when too few samples reach the confidence", () => {
    const five = medianInterval([5, 1, 4, 2, 3])!;
    expect([five.low, five.high]).toEqual([1, 5]);
    expect(five.confidence).toBeCloseTo(1 - 2 / 32, 12);
    expect(medianInterval([2, 1])).toEqual({ low: 1, high: 2, confidence: 0.5 });
  });

  it("is undefined for fewer than two samples and leaves its input unsorted", () => {
    expect(medianInterval([])).toBeUndefined();
    expect(medianInterval([4])).toBeUndefined();
    const xs = [3, 1, 2, 5, 4, 6];
    medianInterval(xs);
    expect(xs).toEqual([3, 1, 2, 5, 4, 6]);
  });

  it("holds the median about as often as it says, over seeded samples of a skewed distribution", () => {
    // Exponential samples (median ln 2), 2000 draws of 12 from the executor's seeded generator.
    const random = mulberry32(12345);
    const uniform = () => 1 - random(); // in (0, 1]
    let held = 0;
    const trials = 2000;
    for (let t = 0; t < trials; t++) {
      const i = medianInterval(Array.from({ length: 12 }, () => -Math.log(uniform())))!;
      if (i.low <= Math.LN2 && Math.LN2 <= i.high) held++;
    }
    // 0.961 expected; the binomial spread of 2000 trials is 0.0043, so 0.94-0.98 is over four of it.
    expect(held / trials).toBeGreaterThan(0.94);
    expect(held / trials).toBeLessThan(0.98);
  });
});
