import { useEffect, useState } from "react";
import { KNOBS } from "../knobs.js";
import { Line, Styled } from "./styled.js";

const FRAMES = ["|", "/", "-", "\\"];

/** An ASCII spinner (any terminal draws it), ticking on its own so the rest of the screen is not re-rendered. */
export function Spinner() {
  const [frame, setFrame] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => setFrame((f) => (f + 1) % FRAMES.length), 100);
    return () => clearInterval(timer);
  }, []);
  return <Styled color="cyan">{FRAMES[frame]}</Styled>;
}

export interface StatusProps {
  readonly busy: boolean;
  readonly text: string;
  readonly error: boolean;
  readonly message: string | undefined;
}

/** The latest message, then what the planner is doing (a spinner while it works). */
export function StatusLine({ busy, text, error, message }: StatusProps) {
  return (
    <Line>
      {busy ? <Spinner /> : <Styled color={error ? "red" : "green"}>{error ? "!" : "="}</Styled>}
      {message === undefined ? null : <Styled color="yellow" bold>{` ${message} |`}</Styled>}
      <Styled {...(error ? { color: "red" } : {})}>{` ${text}`}</Styled>
    </Line>
  );
}

const SHORTCUTS = KNOBS.flatMap((k) => (k.shortcut === undefined ? [] : [k.shortcut])).join("/");
/** The most useful first: a wider terminal adds hints, never trades one for another. */
const HINTS = ["j/k plan", "h/l knob", "+/- value", "enter pin", "space mark", "v compare", "s save", "x run", "w window", `${SHORTCUTS} pin`];
const ALWAYS = ["? help", "q quit"];

/** The key hints in order of use, as many as fit, always ending with help and quit. */
export function hintText(columns: number): string {
  const tail = ALWAYS.join("  ");
  let line = "";
  for (const h of HINTS) {
    const next = line === "" ? h : `${line}  ${h}`;
    if (next.length + 2 + tail.length > columns) break;
    line = next;
  }
  return line === "" ? tail : `${line}  ${tail}`;
}

export function Hints({ columns }: { readonly columns: number }) {
  return <Line><Styled dim>{hintText(columns)}</Styled></Line>;
}
