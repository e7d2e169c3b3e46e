/**
 * Errors as data: every rejection of user input names where it came from (file),
 * the field, the offending value and what would be valid. The CLI prints
 * `message` on one line and exits with code 2.
 */
export type InputErrorCode =
  | "unknown-name"
  | "bad-json"
  | "missing-field"
  | "unknown-field"
  | "bad-type"
  | "out-of-range"
  | "not-divisible"
  | "unsupported"
  | "bad-flag";

export interface InputErrorDetails {
  readonly code: InputErrorCode;
  readonly field: string;
  readonly value: unknown;
  readonly valid: string;
  readonly file?: string;
  readonly reason?: string;
}

export class InputError extends Error {
  readonly code: InputErrorCode;
  readonly field: string;
  readonly value: unknown;
  readonly valid: string;
  readonly file: string | undefined;
  readonly reason: string | undefined;

  constructor(details: InputErrorDetails) {
    super(formatInputError(details));
    this.name = "InputError";
    this.code = details.code;
    this.field = details.field;
    this.value = details.value;
    this.valid = details.valid;
    this.file = details.file;
    this.reason = details.reason;
  }

  /**
   * The same error with its field named another way (a plan field as the CLI flag that sets it), and named
   * in `file` where one is given (a part of a file read on its own, its field then under the part's path).
   */
  renamed(field: string, file: string | undefined = this.file): InputError {
    return new InputError({ code: this.code, field, value: this.value, valid: this.valid, ...(file === undefined ? {} : { file }), ...(this.reason === undefined ? {} : { reason: this.reason }) });
  }
}

export function showValue(value: unknown): string {
  if (value === undefined) return "(missing)";
  if (typeof value === "string") return JSON.stringify(value);
  try {
    const text = JSON.stringify(value);
    return text.length > 60 ? `${text.slice(0, 57)}...` : text;
  } catch {
    return String(value);
  }
}

function formatInputError(d: InputErrorDetails): string {
  const where = d.file === undefined ? "" : `${d.file}: `;
  const reason = d.reason === undefined ? "" : ` (${d.reason})`;
  return `${where}${d.field} = ${showValue(d.value)} is not valid${reason}; valid: ${d.valid}`;
}
