/**
 * The `runtime-kernel` command: dispatch to a subcommand, help, version, and the mapping of
 * failures to exit codes (0 ok, 1 a call failed, 2 a usage or configuration mistake;
 * `run` exits with the workload's own code, or 125 when it never ran).
 * @module
 */
import { isRuntimeKernelError } from "../errors.js";
import { defaultAddress } from "../server/address.js";
import {
  type CliIo,
  COMMON_OPTIONS,
  type Command,
  type CommandContext,
  closest,
  helpText,
  makeContext,
  parseCommandArgs,
  UsageError,
} from "./command.js";
import { eventsCommand } from "./commands/events.js";
import { gestaltProviderCommand } from "./commands/gestalt-provider.js";
import { logsCommand } from "./commands/logs.js";
import { getCommand, lsCommand } from "./commands/ls.js";
import { runCommand } from "./commands/run.js";
import { scheduleCommand } from "./commands/schedule.js";
import { serveCommand } from "./commands/serve.js";
import { destroyCommand, stopCommand } from "./commands/stop.js";
import { addressFrom, describeFailure, failureLine } from "./connect.js";
import { colorEnabled, createStyle, type Style } from "./style.js";
import { version } from "./version.js";

export { version };

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
  scheduleCommand,
  gestaltProviderCommand,
];

/**
 * The signals a command treats as "stop now": Ctrl-C, a kill, and the terminal closing
 * (SIGHUP), which must not leave a `run`'s workload behind as an orphan.
 */
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** The real process's streams, environment and signals. */
export function processIo(): CliIo {
  // A closed terminal (EIO) or a reader gone away (EPIPE, `| head`) must not crash a command
  // halfway through what it was doing (stopping a workload matters more than saying so).
  for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    onSignal(handler) {
      for (const signal of STOP_SIGNALS) process.on(signal, handler);
      return () => {
        for (const signal of STOP_SIGNALS) process.off(signal, handler);
      };
    },
  };
}

/** A command's name with its aliases, as help lists it: `ls, ps`. */
const namesOf = (c: Command) => [c.name, ...(c.aliases ?? [])].join(", ");

function globalHelp(style: Style, env: NodeJS.ProcessEnv): string {
  const width = Math.max(...COMMANDS.map((c) => namesOf(c).length));
  return [
    `${style.bold("runtime-kernel")} ${style.dim(`v${version()}`)} — spawn, observe, stop and reap isolated workloads`,
    "",
    `${style.bold("Usage:")} runtime-kernel COMMAND [options]`,
    "",
    style.bold("Commands:"),
    ...COMMANDS.map((c) => `  ${namesOf(c).padEnd(width)}  ${c.summary}`),
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

/** The command called `name`, by its name or one of its aliases. */
function commandNamed(name: string | undefined): Command | undefined {
  return COMMANDS.find((c) => c.name === name || c.aliases?.includes(name ?? ""));
}

/** Runs the command line `argv` (without node and the script); resolves with the exit code. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const err = createStyle(colorEnabled(io.stderr, io.env, argv.includes("--no-color") ? false : undefined));
  const out = createStyle(colorEnabled(io.stdout, io.env, argv.includes("--no-color") ? false : undefined));
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    const target = name === "help" ? commandNamed(rest[0]) : undefined;
    io.stdout.write(`${target ? helpText(target, out) : globalHelp(out, io.env)}\n`);
    return 0;
  }
  if (name === "--version" || name === "-v" || name === "-V" || name === "version") {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = commandNamed(name);
  if (!command) {
    const hint = closest(
      name,
      COMMANDS.flatMap((c) => [c.name, ...(c.aliases ?? [])]),
    );
    io.stderr.write(
      `${failureLine(err, `unknown command "${name}"${hint ? `; did you mean "${hint}"?` : ""}`)}\n  see runtime-kernel --help\n`,
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
      io.stderr.write(`${failureLine(err, error.message)}\n  see runtime-kernel ${command.name} --help\n`);
      return 2;
    }
    if (isRuntimeKernelError(error, "INVALID_SPEC") && command.name === "serve") {
      io.stderr.write(`${failureLine(err, error.message)}\n`);
      return 2;
    }
    const address = context ? addressFrom(context) : "the server";
    io.stderr.write(`${failureLine(err, describeFailure(error, address))}\n`);
    if (!isRuntimeKernelError(error) && io.env.RUNTIME_KERNEL_DEBUG && error instanceof Error) {
      io.stderr.write(`${error.stack}\n`);
    }
    return 1;
  }
}

/** Options every command accepts (re-exported for documentation generators). */
export { COMMON_OPTIONS };
