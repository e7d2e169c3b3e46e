/** Where commands write: the real process streams in main.ts, buffers in tests. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}
