/**
 * Terminal styling without a dependency. Colors are on when the stream is a TTY and off
 * when it is piped, as people expect; `NO_COLOR` (https://no-color.org) turns them off and
 * `FORCE_COLOR` turns them on whatever the stream, and `--no-color` wins over both.
 * @module
 */

/** A set of styling functions; each returns its input unchanged when colors are off. */
export interface Style {
  readonly enabled: boolean;
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  blue(text: string): string;
  magenta(text: string): string;
  cyan(text: string): string;
  gray(text: string): string;
}

/** Whether to color output written to `stream`, from the environment and the stream. */
export function colorEnabled(
  stream: { isTTY?: boolean },
  env: NodeJS.ProcessEnv = process.env,
  flag?: boolean,
): boolean {
  if (flag !== undefined) return flag;
  const force = env.FORCE_COLOR;
  if (force !== undefined) return force !== "0" && force !== "false";
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  return stream.isTTY === true && env.TERM !== "dumb";
}

const code = (open: number, close: number) => (enabled: boolean) => (text: string) =>
  enabled ? `\u001b[${open}m${text}\u001b[${close}m` : text;

const STYLES = {
  bold: code(1, 22),
  dim: code(2, 22),
  red: code(31, 39),
  green: code(32, 39),
  yellow: code(33, 39),
  blue: code(34, 39),
  magenta: code(35, 39),
  cyan: code(36, 39),
  gray: code(90, 39),
};

/** Styling functions for one output stream. */
export function createStyle(enabled: boolean): Style {
  return {
    enabled,
    bold: STYLES.bold(enabled),
    dim: STYLES.dim(enabled),
    red: STYLES.red(enabled),
    green: STYLES.green(enabled),
    yellow: STYLES.yellow(enabled),
    blue: STYLES.blue(enabled),
    magenta: STYLES.magenta(enabled),
    cyan: STYLES.cyan(enabled),
    gray: STYLES.gray(enabled),
  };
}

/** Strips ANSI styling (for measuring the visible width of a table cell). */
export function stripAnsi(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escapes is the point.
  return text.replace(/\u001b\[[0-9;]*m/g, "");
}
