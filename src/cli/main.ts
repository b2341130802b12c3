/**
 * The `runtime-kernel` command: dispatch to a subcommand, help, version, and the mapping of
 * failures to exit codes (0 ok, 1 a call failed, 2 a usage or configuration mistake;
 * `run` exits with the workload's own code, or 125 when it never ran).
 * @module
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isRuntimeKernelError } from "../errors.js";
import { defaultAddress } from "../server/address.js";
import {
  type CliIo,
  COMMON_OPTIONS,
  type Command,
  type CommandContext,
  helpText,
  makeContext,
  parseCommandArgs,
  UsageError,
} from "./command.js";
import { eventsCommand } from "./commands/events.js";
import { logsCommand } from "./commands/logs.js";
import { getCommand, lsCommand } from "./commands/ls.js";
import { runCommand } from "./commands/run.js";
import { serveCommand } from "./commands/serve.js";
import { destroyCommand, stopCommand } from "./commands/stop.js";
import { addressFrom, describeFailure } from "./connect.js";
import { colorEnabled, createStyle, type Style } from "./style.js";

/** Every subcommand, in the order `--help` lists them. */
export const COMMANDS: readonly Command[] = [
  serveCommand,
  runCommand,
  lsCommand,
  getCommand,
  logsCommand,
  eventsCommand,
  stopCommand,
  destroyCommand,
];

/** The real process's streams, environment and signals. */
export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    onSignal(handler) {
      process.on("SIGINT", handler);
      process.on("SIGTERM", handler);
      return () => {
        process.off("SIGINT", handler);
        process.off("SIGTERM", handler);
      };
    },
  };
}

/** The package's version, read from the package.json above this file (source or dist). */
export function version(): string {
  let dir: string;
  try {
    dir = dirname(fileURLToPath(import.meta.url));
  } catch {
    // A CommonJS build has no import.meta.url.
    return "unknown";
  }
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === "runtime-kernel" && pkg.version) return pkg.version;
    } catch {
      // Not here: look one level up.
    }
    dir = dirname(dir);
  }
  return "unknown";
}

function globalHelp(style: Style, env: NodeJS.ProcessEnv): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `${style.bold("runtime-kernel")} ${style.dim(`v${version()}`)} — spawn, observe, stop and reap isolated workloads`,
    "",
    `${style.bold("Usage:")} runtime-kernel COMMAND [options]`,
    "",
    style.bold("Commands:"),
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    style.bold("Getting started:"),
    `  ${style.dim("$")} runtime-kernel serve              ${style.dim("# in one terminal")}`,
    `  ${style.dim("$")} runtime-kernel run -- sleep 2     ${style.dim("# in another")}`,
    "",
    `The server listens on ${defaultAddress(env)} unless told otherwise`,
    "(--address, or $RUNTIME_KERNEL_ADDRESS on both sides).",
    `Run ${style.bold("runtime-kernel COMMAND --help")} for a command's options.`,
  ].join("\n");
}

function suggest(name: string): string | undefined {
  const close = COMMANDS.find((c) => c.name.startsWith(name.slice(0, 2)) || name.startsWith(c.name));
  return close?.name;
}

/** Runs the command line `argv` (without node and the script); resolves with the exit code. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const err = createStyle(colorEnabled(io.stderr, io.env, argv.includes("--no-color") ? false : undefined));
  const out = createStyle(colorEnabled(io.stdout, io.env, argv.includes("--no-color") ? false : undefined));
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    const target = name === "help" ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    io.stdout.write(`${target ? helpText(target, out) : globalHelp(out, io.env)}\n`);
    return 0;
  }
  if (name === "--version" || name === "-V" || name === "version") {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    const hint = suggest(name);
    io.stderr.write(
      `${err.red("error:")} unknown command "${name}"${hint ? `; did you mean "${hint}"?` : ""}\n  see runtime-kernel --help\n`,
    );
    return 2;
  }
  let context: CommandContext | undefined;
  try {
    const { values, positionals } = parseCommandArgs(command, rest);
    context = makeContext(values, positionals, io);
    if (values.help === true) {
      context.print(helpText(command, context.out));
      return 0;
    }
    return await command.run(context);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`${err.red("error:")} ${error.message}\n  see runtime-kernel ${command.name} --help\n`);
      return 2;
    }
    if (isRuntimeKernelError(error, "INVALID_SPEC") && command.name === "serve") {
      io.stderr.write(`${err.red("error:")} ${error.message}\n`);
      return 2;
    }
    const address = context ? addressFrom(context) : "the server";
    io.stderr.write(`${err.red("error:")} ${describeFailure(error, address)}\n`);
    if (!isRuntimeKernelError(error) && io.env.RUNTIME_KERNEL_DEBUG && error instanceof Error) {
      io.stderr.write(`${error.stack}\n`);
    }
    return 1;
  }
}

/** Options every command accepts (re-exported for documentation generators). */
export { COMMON_OPTIONS };
