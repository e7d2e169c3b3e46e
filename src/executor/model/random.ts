/**
 * Seeded randomness for the executor: every parameter and every training sequence comes from its own
 * stream, keyed by the run's seed and a name, so a value never depends on how the plan splits the work.
 */

/** FNV-1a, 32-bit (Fowler, Noll, Vo; http://www.isthe.com/chongo/tech/comp/fnv/): a stream key from a name. */
export function hash32(text: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** mulberry32 (Tommy Ettinger, public domain): a small, fast 32-bit generator; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draws by the Box-Muller transform: each pair of uniforms gives two (cosine, then sine). */
export function standardNormal(random: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const z = spare;
      spare = undefined;
      return z;
    }
    const u = 1 - random();
    const v = random();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/** `count` normal samples of standard deviation `std`. */
export function normals(random: () => number, count: number, std: number): Float32Array {
  const out = new Float32Array(count);
  const z = standardNormal(random);
  for (let i = 0; i < count; i++) out[i] = std * z();
  return out;
}

/**
 * Synthetic tokens that a model can learn: a Markov chain where each token has `SUCCESSORS` possible
 * successors (drawn once from the seed), so the loss can fall from ln(V) towards ln(SUCCESSORS).
 */
export const SUCCESSORS = 4;

export function transitionTable(seed: number, vocab: number): Int32Array {
  const random = mulberry32(hash32("transitions", seed));
  const table = new Int32Array(vocab * SUCCESSORS);
  for (let i = 0; i < table.length; i++) table[i] = Math.floor(random() * vocab);
  return table;
}

/**
 * Sequence `index` of training step `step`: `length` tokens (the inputs and, shifted by one, the targets).
 * Its stream depends only on (seed, step, index), never on the rank that reads it.
 */
export function sequence(seed: number, table: Int32Array, vocab: number, step: number, index: number, length: number): Int32Array {
  const random = mulberry32(hash32(`seq:${step}:${index}`, seed));
  const out = new Int32Array(length);
  let token = Math.floor(random() * vocab);
  for (let i = 0; i < length; i++) {
    out[i] = token;
    token = table[token * SUCCESSORS + Math.floor(random() * SUCCESSORS)]!;
  }
  return out;
}
