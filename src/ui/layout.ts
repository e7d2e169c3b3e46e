/** How the explorer divides the terminal. Pure: the terminal's size in, line budgets out. */
export const MIN_COLUMNS = 80;
export const MIN_ROWS = 24;

/** Lines that every screen has: knobs (2), list header, memory (2), time (2), links (2), status, key hints. */
const FIXED_LINES = 11;

export interface Layout {
  readonly columns: number;
  /** Lines drawn: one fewer than the terminal, so that Ink updates lines in place instead of clearing. */
  readonly height: number;
  /** Plan rows visible in the list (it scrolls). */
  readonly listRows: number;
  /** Lines for the timeline and, where they are spare, the explanation. */
  readonly detailLines: number;
  /** Room for the title and the extra list columns. */
  readonly wide: boolean;
}

export function tooSmall(columns: number, rows: number): boolean {
  return columns < MIN_COLUMNS || rows < MIN_ROWS;
}

export function layout(columns: number, rows: number, maxListRows: number): Layout {
  const height = rows - 1;
  const rest = height - FIXED_LINES;
  const listRows = Math.max(1, Math.min(maxListRows, Math.max(4, Math.floor(rest * 0.45))));
  return { columns, height, listRows, detailLines: rest - listRows, wide: columns >= 100 };
}

/** The first row of the list window: the selection stays visible, centred once the list scrolls. */
export function scrollTop(selected: number, visible: number, total: number): number {
  return Math.max(0, Math.min(selected - Math.floor(visible / 2), total - visible));
}

/** How many stage rows renderTimeline may draw in `lines` (a title and an axis around them). */
export function timelineRows(lines: number, ranks: number): number {
  const room = lines - 2;
  if (ranks <= room) return ranks;
  return Math.max(2, room - 1); // elided: head and tail with one "... more ..." line between
}
