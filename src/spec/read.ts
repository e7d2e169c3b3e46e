import { InputError } from "./errors.js";

/**
 * Typed field readers for validating parsed JSON. Each throws an InputError
 * naming the file, the dotted field path, the value and the valid range.
 */
export interface NumberRule {
  readonly min?: number;
  readonly max?: number;
  /** Exclusive lower bound, e.g. 0 for "positive". */
  readonly above?: number;
  readonly integer?: boolean;
}

export class FieldReader {
  /** The keys a parser has asked about, read or found absent: what `rejectUnread` counts as known. */
  private readonly asked = new Set<string>();

  constructor(
    private readonly obj: Record<string, unknown>,
    readonly file: string,
    private readonly prefix = "",
  ) {}

  static of(value: unknown, file: string, field = ""): FieldReader {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new InputError({ code: "bad-type", file, field: field || "(top level)", value, valid: "a JSON object" });
    }
    return new FieldReader(value as Record<string, unknown>, file, field);
  }

  path(key: string): string {
    return this.prefix === "" ? key : `${this.prefix}.${key}`;
  }

  has(key: string): boolean {
    this.asked.add(key);
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  raw(key: string): unknown {
    this.asked.add(key);
    return this.obj[key];
  }

  /**
   * After a parser has asked for every field it knows: any other key is an error, so that a misspelt
   * optional field ("kvHead") is not dropped silently for its default. `alsoKnown`: keys another parser
   * of the same object reads.
   */
  rejectUnread(alsoKnown: readonly string[] = []): void {
    const unknown = Object.keys(this.obj).find((k) => !this.asked.has(k) && !alsoKnown.includes(k));
    if (unknown === undefined) return;
    const known = [...this.asked, ...alsoKnown].sort();
    throw new InputError({ code: "unknown-field", file: this.file, field: this.path(unknown), value: this.obj[unknown], valid: `a known field: ${known.join(", ")}`, reason: "unknown field" });
  }

  child(key: string): FieldReader {
    if (!this.has(key)) this.missing(key, "an object");
    return FieldReader.of(this.obj[key], this.file, this.path(key));
  }

  number(key: string, rule: NumberRule = {}): number {
    if (!this.has(key)) this.missing(key, describeRule(rule));
    return this.checkNumber(key, this.obj[key], rule);
  }

  optionalNumber(key: string, rule: NumberRule = {}): number | undefined {
    return this.has(key) ? this.checkNumber(key, this.obj[key], rule) : undefined;
  }

  string(key: string): string {
    const value = this.obj[key];
    if (!this.has(key)) this.missing(key, "a string");
    if (typeof value !== "string" || value === "") {
      throw new InputError({ code: "bad-type", file: this.file, field: this.path(key), value, valid: "a non-empty string" });
    }
    return value;
  }

  optionalString(key: string): string | undefined {
    return this.has(key) ? this.string(key) : undefined;
  }

  boolean(key: string, fallback?: boolean): boolean {
    const value = this.obj[key];
    if (!this.has(key)) {
      if (fallback !== undefined) return fallback;
      this.missing(key, "true or false");
    }
    if (typeof value !== "boolean") {
      throw new InputError({ code: "bad-type", file: this.file, field: this.path(key), value, valid: "true or false" });
    }
    return value;
  }

  oneOf<T extends string>(key: string, options: readonly T[], fallback?: T): T {
    const value = this.obj[key];
    if (!this.has(key)) {
      if (fallback !== undefined) return fallback;
      this.missing(key, options.join(", "));
    }
    if (typeof value !== "string" || !(options as readonly string[]).includes(value)) {
      throw new InputError({ code: "out-of-range", file: this.file, field: this.path(key), value, valid: options.join(", ") });
    }
    return value as T;
  }

  private checkNumber(key: string, value: unknown, rule: NumberRule): number {
    const field = this.path(key);
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new InputError({ code: "bad-type", file: this.file, field, value, valid: describeRule(rule) });
    }
    const bad =
      (rule.integer === true && !Number.isInteger(value)) ||
      (rule.min !== undefined && value < rule.min) ||
      (rule.max !== undefined && value > rule.max) ||
      (rule.above !== undefined && value <= rule.above);
    if (bad) throw new InputError({ code: "out-of-range", file: this.file, field, value, valid: describeRule(rule) });
    return value;
  }

  private missing(key: string, valid: string): never {
    throw new InputError({ code: "missing-field", file: this.file, field: this.path(key), value: undefined, valid });
  }
}

export function describeRule(rule: NumberRule): string {
  const kind = rule.integer === true ? "an integer" : "a number";
  const parts: string[] = [];
  if (rule.above !== undefined) parts.push(`> ${rule.above}`);
  if (rule.min !== undefined) parts.push(`>= ${rule.min}`);
  if (rule.max !== undefined) parts.push(`<= ${rule.max}`);
  return parts.length === 0 ? kind : `${kind} ${parts.join(" and ")}`;
}

export const POSITIVE_INT: NumberRule = { integer: true, min: 1 };
/**
 * A model's widths and lengths (hidden, MLP and head sizes, vocabulary, sequence): up to 2^24, far above
 * any published model (hidden sizes to 2^15, vocabularies to 2^18, contexts to 2^21 tokens), so that a
 * mistyped figure is an error instead of Infinity and NaN in every estimate.
 */
export const MODEL_SIZE: NumberRule = { integer: true, min: 1, max: 2 ** 24 };
/** A model's counts (layers, heads, experts): up to 2^16. */
export const MODEL_COUNT: NumberRule = { integer: true, min: 1, max: 2 ** 16 };
export const POSITIVE: NumberRule = { above: 0 };
export const FRACTION: NumberRule = { above: 0, max: 1 };

/**
 * Key-value heads (grouped-query attention): the optional field `field`, absent meaning one per attention
 * head, which must divide the attention heads (named `headsField` in the error).
 */
export function readKvHeads(r: FieldReader, field: string, headsField: string, attentionHeads: number): number {
  const kvHeads = r.optionalNumber(field, MODEL_COUNT) ?? attentionHeads;
  if (attentionHeads % kvHeads !== 0) {
    throw new InputError({ code: "not-divisible", file: r.file, field: r.path(field), value: kvHeads, valid: `a divisor of ${headsField} (${attentionHeads})` });
  }
  return kvHeads;
}
