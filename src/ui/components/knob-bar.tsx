import type { Plan } from "../../spec/types.js";
import { isPinned, KNOBS, knobValue, showValue, type Flags, type KnobContext } from "../knobs.js";
import { Line, Styled } from "./styled.js";

export interface KnobBarProps {
  readonly flags: Flags;
  readonly knobs: KnobContext;
  readonly selected: Plan | undefined;
  readonly focus: number;
  readonly title: boolean;
  /** The calibration layer applies (the default; not with --no-calibrated): shown after the context. */
  readonly calibrated?: boolean;
  /** The GPU when --gpu swapped the cluster's: shown after the cluster, which names its own GPU otherwise. */
  readonly gpu?: string | undefined;
}

const MAX_VALUE = 24;

/**
 * Two lines: the context (model, GPUs, cluster, sequence, batch) and the plan knobs. A pinned knob shows
 * its value with `*`; a free one shows the selected plan's value. The focused knob is in brackets.
 */
export function KnobBar({ flags, knobs, selected, focus, title, calibrated, gpu }: KnobBarProps) {
  const cell = (i: number) => {
    const k = KNOBS[i]!;
    const pinned = isPinned(flags, k);
    let value = showValue(knobValue(k, flags, knobs, selected));
    if (value.length > MAX_VALUE) value = `...${value.slice(-(MAX_VALUE - 3))}`;
    const text = `${k.label} ${value}${pinned ? "*" : ""}`;
    const focused = i === focus;
    return (
      <Styled key={k.flag} inverse={focused} bold={pinned || k.kind === "context"} {...(pinned ? { color: "yellow" } : k.kind === "plan" ? { dim: !focused } : {})}>
        {focused ? `[${text}]` : ` ${text} `}
      </Styled>
    );
  };
  const indices = (kind: "context" | "plan") => KNOBS.flatMap((k, i) => (k.kind === kind ? [i] : []));
  return (
    <>
      <Line>
        {title ? <Styled color="cyan" bold>meshplan explore </Styled> : null}
        {indices("context").map(cell)}
        {gpu !== undefined ? <Styled bold> gpu {gpu} </Styled> : null}
        {calibrated === true ? <Styled color="cyan"> calibrated</Styled> : null}
      </Line>
      <Line>{indices("plan").map(cell)}</Line>
    </>
  );
}
