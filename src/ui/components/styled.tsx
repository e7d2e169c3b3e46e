import { Text } from "ink";
import { createContext, useContext, type ReactNode } from "react";

/** Whether to colour: off for NO_COLOR and for terminals without colours; markers carry every meaning. */
export const ColorContext = createContext(true);

export interface StyleProps {
  readonly color?: string | undefined;
  readonly bg?: string | undefined;
  readonly bold?: boolean;
  readonly dim?: boolean;
  readonly inverse?: boolean;
  readonly children?: ReactNode;
}

/** Ink's Text with the colour attributes dropped when colour is off (bold stays: it is not a colour). */
export function Styled({ color, bg, bold, dim, inverse, children }: StyleProps) {
  const on = useContext(ColorContext);
  if (!on) return <Text bold={bold === true}>{children}</Text>;
  return (
    <Text bold={bold === true} dimColor={dim === true} inverse={inverse === true} {...(color === undefined ? {} : { color })} {...(bg === undefined ? {} : { backgroundColor: bg })}>
      {children}
    </Text>
  );
}

/** One full-width line that never wraps: what does not fit is cut. */
export function Line({ children }: { readonly children?: ReactNode }) {
  return <Text wrap="truncate-end">{children}</Text>;
}
