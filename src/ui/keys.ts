import type { Key } from "ink";
import { KNOBS } from "./knobs.js";

/** What a key press asks for. Pure mapping from Ink's key events; the component carries it out. */
export type Command =
  | { readonly kind: "move"; readonly delta: number }
  | { readonly kind: "focus"; readonly delta: number }
  | { readonly kind: "step"; readonly delta: 1 | -1 }
  | { readonly kind: "pin"; readonly knob: number }
  | { readonly kind: "freeAll" }
  | { readonly kind: "mark" }
  | { readonly kind: "compare" }
  | { readonly kind: "save" }
  | { readonly kind: "execute" }
  | { readonly kind: "window" }
  | { readonly kind: "help" }
  | { readonly kind: "back" }
  | { readonly kind: "quit" };

export type KeyLike = Partial<Pick<Key, "upArrow" | "downArrow" | "leftArrow" | "rightArrow" | "pageUp" | "pageDown" | "home" | "end" | "return" | "escape" | "ctrl">>;

const PAGE = 5;
const BIG = 1_000_000;

export function commandFor(input: string, key: KeyLike, focus: number): Command | undefined {
  if (key.ctrl === true && input === "c") return { kind: "quit" };
  if (key.upArrow === true) return { kind: "move", delta: -1 };
  if (key.downArrow === true) return { kind: "move", delta: 1 };
  if (key.pageUp === true) return { kind: "move", delta: -PAGE };
  if (key.pageDown === true) return { kind: "move", delta: PAGE };
  if (key.home === true) return { kind: "move", delta: -BIG };
  if (key.end === true) return { kind: "move", delta: BIG };
  if (key.leftArrow === true) return { kind: "focus", delta: -1 };
  if (key.rightArrow === true) return { kind: "focus", delta: 1 };
  if (key.return === true) return { kind: "pin", knob: focus };
  if (key.escape === true) return { kind: "back" };
  switch (input) {
    case "k": return { kind: "move", delta: -1 };
    case "j": return { kind: "move", delta: 1 };
    case "g": return { kind: "move", delta: -BIG };
    case "G": return { kind: "move", delta: BIG };
    case "h": return { kind: "focus", delta: -1 };
    case "l": return { kind: "focus", delta: 1 };
    case "+": case "=": return { kind: "step", delta: 1 };
    case "-": case "_": return { kind: "step", delta: -1 };
    case "u": return { kind: "freeAll" };
    case " ": return { kind: "mark" };
    case "v": return { kind: "compare" };
    case "s": return { kind: "save" };
    case "x": return { kind: "execute" };
    case "w": return { kind: "window" };
    case "?": return { kind: "help" };
    case "q": return { kind: "quit" };
  }
  const knob = KNOBS.findIndex((k) => k.shortcut === input);
  return knob >= 0 ? { kind: "pin", knob } : undefined;
}

/**
 * What an unbound key says: a printable character that is no command names itself (the key did nothing,
 * which is worth knowing); other unbound keys (function keys, Tab) stay silent.
 */
export function unboundKey(input: string, key: KeyLike & { readonly meta?: boolean }): string | undefined {
  if (key.ctrl === true || key.meta === true || !/^[\x21-\x7e]$/.test(input)) return undefined;
  return `${input}: no such key (? shows the keys)`;
}

/** The help screen, in the order a first-time user needs it. Kept beside the mapping it describes. */
export const KEY_HELP: readonly (readonly [string, string])[] = [
  ["j/k  up/down", "select a plan (PgUp/PgDn, g/G: first/last)"],
  ["h/l  left/right", "choose a knob in the top two lines"],
  ["+ -", "next/previous value of that knob (plan knobs get pinned)"],
  ["Enter", "pin the knob at the selected plan's value, or free it"],
  [KNOBS.filter((k) => k.shortcut !== undefined).map((k) => k.shortcut).join(" "), `pin/free ${KNOBS.filter((k) => k.shortcut !== undefined).map((k) => k.label).join(" ")} directly`],
  ["u", "free every pinned knob"],
  ["space", "mark the selected plan for comparison (two at most)"],
  ["v", "compare the two marked plans side by side"],
  ["w", "timeline: start of the step, whole step, end of it"],
  ["s", "save the selected plan (simulated, as JSON) here"],
  ["x", "run the selected plan here (small models; Esc stops it)"],
  ["? Esc", "this help / back"],
  ["q", "quit"],
];
