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
  /** Registers a handler of SIGINT/SIGTERM; returns a function that removes it. */
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
    const message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, "");
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
