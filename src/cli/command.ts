/**
 * A small command framework over `node:util` `parseArgs`: each command declares its
 * options once, and gets `--help`, option errors that say what to type instead, and the
 * options every command shares (`--address`, `--no-color`, ...).
 * @module
 */
import { parseArgs } from "node:util";
import { colorEnabled, createStyle, type Style } from "./style.js";

/** One option of a command. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** Shown in --help. */
  description: string;
  /** The placeholder of its value in --help (`NAME`, `MS`, ...). */
  value?: string;
}

/** The streams and environment a command runs with (the real ones, or a test's). */
export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  /** Registers a handler of SIGINT, SIGTERM and SIGHUP; returns a function that removes it. */
  onSignal(handler: (signal: NodeJS.Signals) => void): () => void;
}

/** What a command's `run` receives. */
export interface CommandContext {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  io: CliIo;
  /** Styling for stdout and for stderr (each on only if that stream is a terminal). */
  out: Style;
  err: Style;
  /** Writes a line to stdout. */
  print(line?: string): void;
  /** Writes a line to stderr. */
  note(line?: string): void;
}

/** A subcommand of `runtime-kernel`. */
export interface Command {
  name: string;
  /** Other names it answers to (`ps` for `ls`), listed in help. */
  aliases?: readonly string[];
  /** One line, for the command list. */
  summary: string;
  /** The usage line after `runtime-kernel `. */
  usage: string;
  /** Paragraphs shown by --help under the usage line. */
  description?: string;
  options: Record<string, OptionSpec>;
  examples?: string[];
  run(context: CommandContext): Promise<number>;
}

/** A mistake in how the command was called: exit code 2, with a hint. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/** Options every command takes. */
export const COMMON_OPTIONS: Record<string, OptionSpec> = {
  help: { type: "boolean", short: "h", description: "show this help" },
  color: {
    type: "boolean",
    description: "force colors on (--no-color: off); default: on for terminals, honours NO_COLOR",
  },
};

/** Options of commands that talk to a server. */
export const CLIENT_OPTIONS: Record<string, OptionSpec> = {
  address: {
    type: "string",
    short: "a",
    value: "ADDR",
    description:
      "server address: unix:PATH or HOST:PORT (default: $RUNTIME_KERNEL_ADDRESS, else the user's socket)",
  },
  "token-file": {
    type: "string",
    value: "FILE",
    description: "read the bearer token from FILE (default: $RUNTIME_KERNEL_TOKEN)",
  },
  "tls-ca": {
    type: "string",
    value: "FILE",
    description: "dial with TLS, trusting the CA certificate in FILE",
  },
};

/** The fewest edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate that `typed` most likely meant: the closest by edit distance, within a third
 * of the longer word (and at least one edit), or one that `typed` is a prefix of.
 */
export function closest(typed: string, candidates: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const distance = name.startsWith(typed) ? 0 : editDistance(typed, name);
    const limit = Math.max(1, Math.floor(Math.max(typed.length, name.length) / 3));
    if (distance <= limit && (best === undefined || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

/** The --help text of a command. */
export function helpText(command: Command, style: Style): string {
  const options = { ...command.options, ...COMMON_OPTIONS };
  const rows = Object.entries(options).map(([name, spec]) => {
    const flag = spec.type === "boolean" && name === "color" ? "--[no-]color" : `--${name}`;
    const left = `${spec.short ? `-${spec.short}, ` : "    "}${flag}${spec.value ? ` ${spec.value}` : ""}`;
    return [left, spec.description + (spec.multiple ? " (repeatable)" : "")] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length));
  const lines = [
    `${style.bold("Usage:")} runtime-kernel ${command.usage}`,
    ...(command.aliases?.length ? [`${style.bold("Aliases:")} ${command.aliases.join(", ")}`] : []),
    "",
    command.description ?? command.summary,
    "",
    style.bold("Options:"),
    ...rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`),
  ];
  if (command.examples?.length) {
    lines.push("", style.bold("Examples:"), ...command.examples.map((e) => `  ${style.dim("$")} ${e}`));
  }
  return lines.join("\n");
}

/** Parses a command's arguments; throws {@link UsageError} on an unknown option or a missing value. */
export function parseCommandArgs(
  command: Command,
  args: string[],
): { values: CommandContext["values"]; positionals: string[] } {
  const options = { ...command.options, ...COMMON_OPTIONS };
  try {
    const parsed = parseArgs({
      args,
      options: Object.fromEntries(
        Object.entries(options).map(([name, spec]) => [
          name,
          {
            type: spec.type,
            ...(spec.short ? { short: spec.short } : {}),
            ...(spec.multiple ? { multiple: true } : {}),
          },
        ]),
      ),
      allowPositionals: true,
      allowNegative: true,
      strict: true,
    });
    return { values: parsed.values as CommandContext["values"], positionals: parsed.positionals };
  } catch (error) {
    let message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, "");
    const unknown = /^Unknown option '--([^']+)'/.exec(message)?.[1];
    const hint = unknown === undefined ? undefined : closest(unknown, Object.keys(options));
    if (hint !== undefined) message += `; did you mean --${hint}?`;
    throw new UsageError(message, command.name);
  }
}

/** Builds the context a command runs with. */
export function makeContext(
  values: CommandContext["values"],
  positionals: string[],
  io: CliIo,
): CommandContext {
  const flag = typeof values.color === "boolean" ? values.color : undefined;
  return {
    values,
    positionals,
    io,
    out: createStyle(colorEnabled(io.stdout, io.env, flag)),
    err: createStyle(colorEnabled(io.stderr, io.env, flag)),
    print: (line = "") => void io.stdout.write(`${line}\n`),
    note: (line = "") => void io.stderr.write(`${line}\n`),
  };
}

/** A string option's value, or undefined. */
export function stringOption(context: CommandContext, name: string): string | undefined {
  const v = context.values[name];
  return typeof v === "string" ? v : undefined;
}

/** A repeatable string option's values. */
export function listOption(context: CommandContext, name: string): string[] {
  const v = context.values[name];
  return Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
}

/** Parses `KEY=VALUE` pairs of a repeatable option, naming the option on a malformed one. */
export function keyValues(context: CommandContext, name: string): Record<string, string> | undefined {
  const pairs = listOption(context, name);
  if (pairs.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--${name} takes KEY=VALUE (got "${pair}")`, undefined);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}
