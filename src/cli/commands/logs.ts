/**
 * `runtime-kernel logs`: a workload's output, optionally followed.
 * @module
 */
import { CLIENT_OPTIONS, type Command, stringOption, UsageError } from "../command.js";
import { connect } from "../connect.js";

/** `runtime-kernel logs`. */
export const logsCommand: Command = {
  name: "logs",
  summary: "print a workload's output",
  usage: "logs [options] WORKLOAD",
  description: "Prints the current run's output: its stdout to stdout, its stderr to stderr.",
  options: {
    follow: {
      type: "boolean",
      short: "f",
      description: "keep printing new output until the run ends (or Ctrl-C)",
    },
    tail: { type: "string", short: "t", value: "N", description: "only the last N lines written so far" },
    timestamps: { type: "boolean", description: "prefix each line with its time, when the backend knows it" },
    ...CLIENT_OPTIONS,
  },
  examples: ["runtime-kernel logs job-1", "runtime-kernel logs -f --tail 20 job-1"],
  async run(context) {
    const [id, ...rest] = context.positionals;
    if (id === undefined || rest.length > 0)
      throw new UsageError("logs takes exactly one workload id", "logs");
    const tailText = stringOption(context, "tail");
    if (tailText !== undefined && !/^\d+$/.test(tailText)) {
      throw new UsageError(`--tail takes a number of lines (got "${tailText}")`, "logs");
    }
    const client = connect(context);
    const stop = new AbortController();
    const remove = context.io.onSignal(() => stop.abort());
    const stamp = context.values.timestamps === true;
    try {
      for await (const entry of client.logs(id, {
        follow: context.values.follow === true,
        ...(tailText !== undefined ? { tail: Number(tailText) } : {}),
        signal: stop.signal,
      })) {
        const prefix = stamp && entry.at !== undefined ? `${new Date(entry.at).toISOString()} ` : "";
        (entry.stream === "stderr" ? context.io.stderr : context.io.stdout).write(`${prefix}${entry.line}\n`);
      }
      return 0;
    } finally {
      remove();
      client.close();
    }
  },
};
