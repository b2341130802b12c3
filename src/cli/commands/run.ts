/**
 * `runtime-kernel run -- CMD ARGS`: one workload in the foreground, the way `docker run`
 * feels. Creates it, streams its output and its transitions, forwards Ctrl-C as a
 * graceful stop, and exits with the workload's own exit code.
 * @module
 */
import { randomBytes } from "node:crypto";
import {
  isRuntimeKernelError,
  type TransitionEvent,
  type WorkloadSpec,
  type WorkloadStatus,
} from "../../index.js";
import type { RuntimeClient } from "../../server/client.js";
import {
  CLIENT_OPTIONS,
  type Command,
  type CommandContext,
  keyValues,
  stringOption,
  UsageError,
} from "../command.js";
import { addressFrom, connect, describeFailure, failureLine } from "../connect.js";
import { describeExit, formatDuration, isFailure, parseDuration } from "../format.js";

/** Exit code when the workload never ran or its end is unknown (as `docker run` uses 125). */
export const EXIT_RUNTIME_FAILURE = 125;

function durationOption(context: CommandContext, name: string): number | undefined {
  const text = stringOption(context, name);
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined)
    throw new UsageError(`--${name} takes a duration such as 500ms, 10s or 5m (got "${text}")`, "run");
  return ms;
}

/** A fresh workload id: DNS-1123, short enough to read. */
function generatedId(): string {
  return `run-${randomBytes(4).toString("hex")}`;
}

/** The code `run` exits with for a stopped workload. */
export function exitCodeOf(status: Pick<WorkloadStatus, "exitCode" | "stopReason">): number {
  if (status.exitCode !== undefined) return status.exitCode;
  return status.stopReason === "completed" ? 0 : EXIT_RUNTIME_FAILURE;
}

/** `runtime-kernel run`. */
export const runCommand: Command = {
  name: "run",
  summary: "run a command as a workload in the foreground and exit with its code",
  usage: "run [options] -- COMMAND [ARGS...]",
  description: [
    "Creates a workload running COMMAND, streams its output (stdout to stdout, stderr to stderr)",
    "and its transitions (on stderr), and exits with its exit code. Ctrl-C stops it gracefully",
    "(SIGTERM, then SIGKILL after the grace); a second Ctrl-C kills it at once; a closed terminal",
    "(SIGHUP) or SIGTERM stops it like Ctrl-C. The workload is destroyed when it ends unless --keep",
    "is given. Exit code 125 means it never ran.",
  ].join("\n"),
  options: {
    profile: {
      type: "string",
      short: "p",
      value: "NAME",
      description: "profile to run with (default: default)",
    },
    name: { type: "string", short: "n", value: "ID", description: "workload id (default: run-<random>)" },
    env: {
      type: "string",
      short: "e",
      value: "KEY=VALUE",
      multiple: true,
      description: "environment variable",
    },
    label: {
      type: "string",
      short: "l",
      value: "KEY=VALUE",
      multiple: true,
      description: "label on the workload",
    },
    owner: { type: "string", value: "OWNER", description: "owner (quotas are per owner)" },
    image: {
      type: "string",
      short: "i",
      value: "IMAGE",
      description: "container image (docker, kubernetes)",
    },
    cwd: { type: "string", short: "w", value: "DIR", description: "working directory inside the workload" },
    workspace: {
      type: "string",
      value: "DIR",
      description: "host directory given to the workload as its workspace",
    },
    grace: {
      type: "string",
      short: "g",
      value: "DURATION",
      description: "grace between SIGTERM and SIGKILL (e.g. 5s)",
    },
    "idle-timeout": {
      type: "string",
      value: "DURATION",
      description: "stop after this long without activity",
    },
    "max-lifetime": { type: "string", value: "DURATION", description: "stop this long after it started" },
    keep: {
      type: "boolean",
      description:
        "keep the stopped workload for ls, logs and get until destroyed or reaped by the server (its reapAfterMs, 60s by default); default: destroy it when it ends",
    },
    detach: { type: "boolean", short: "d", description: "create it, print its id, and return at once" },
    quiet: { type: "boolean", short: "q", description: "no transition lines, only the workload's output" },
    ...CLIENT_OPTIONS,
  },
  examples: [
    "runtime-kernel run -- sleep 2",
    "runtime-kernel run -e GREETING=hi -- sh -c 'echo $GREETING; exit 3'; echo $?",
    "runtime-kernel run --name job-1 --grace 30s --keep -- ./long-task.sh",
  ],
  async run(context) {
    const command = context.positionals;
    const image = stringOption(context, "image");
    // Without a command, the profile's (or the image's own) is what runs; only refuse when nothing says what.
    if (command.length === 0 && image === undefined && stringOption(context, "profile") === undefined) {
      throw new UsageError(
        "what should run? give a command after --, e.g. runtime-kernel run -- sleep 2",
        "run",
      );
    }
    const workloadId = stringOption(context, "name") ?? generatedId();
    const graceMs = durationOption(context, "grace");
    const idleTimeoutMs = durationOption(context, "idle-timeout");
    const maxLifetimeMs = durationOption(context, "max-lifetime");
    const env = keyValues(context, "env");
    const labels = keyValues(context, "label");
    const owner = stringOption(context, "owner");
    const cwd = stringOption(context, "cwd");
    const workspace = stringOption(context, "workspace");
    const spec: WorkloadSpec = {
      workloadId,
      profile: stringOption(context, "profile") ?? "default",
      runnable: {
        ...(command.length > 0 ? { command } : {}),
        image,
        cwd,
      },
      owner,
      ...(env ? { env } : {}),
      ...(labels ? { labels } : {}),
      workspace,
      graceMs,
      idleTimeoutMs,
      maxLifetimeMs,
    };
    const client = connect(context);
    try {
      return await runInForeground(context, client, spec, graceMs);
    } finally {
      client.close();
    }
  },
};

/** What following one workload in the foreground needs: the call's context, the client, the workload. */
interface Foreground {
  context: CommandContext;
  client: RuntimeClient;
  id: string;
  quiet: boolean;
  /** A transition line about the workload on stderr, unless --quiet. */
  progress(text: string): void;
}

/** How the workload ended, as far as the events told: its last status, or why it is unknown. */
interface Ending {
  final: WorkloadStatus | undefined;
  endedAt: number | undefined;
  lostServer: unknown;
}

async function runInForeground(
  context: CommandContext,
  client: RuntimeClient,
  spec: WorkloadSpec,
  graceMs: number | undefined,
): Promise<number> {
  const { err, note } = context;
  const quiet = context.values.quiet === true;
  const id = spec.workloadId;
  const run: Foreground = {
    context,
    client,
    id,
    quiet,
    progress: (text) => {
      if (!quiet) note(`${err.cyan("›")} ${err.bold(id)} ${text}`);
    },
  };
  const status = await startWorkload(run, spec);
  if (status === undefined) return EXIT_RUNTIME_FAILURE;
  if (context.values.detach === true) {
    context.print(id);
    return 0;
  }
  const done = new AbortController();
  const removeSignal = forwardSignals(run, graceMs);
  const output = new OutputStreams(run, done.signal);
  output.follow();
  run.progress(err.green("running"));
  const ending = await followToEnd(run, status, output, done.signal);
  // Let the output of the last run drain (its stream ends with the run), within reason.
  await output.drained(2_000);
  done.abort();
  removeSignal();
  return reportEnd(run, ending);
}

/** Creates the workload once the server answers; on failure, says why and leaves no failed start behind. */
async function startWorkload(run: Foreground, spec: WorkloadSpec): Promise<WorkloadStatus | undefined> {
  const { context, client, id } = run;
  const { err, note } = context;
  try {
    // Reach the server first, so nothing says "starting" when there is no one to start it.
    await client.health();
    run.progress(err.dim(`starting (profile ${spec.profile})`));
    return await client.create(spec);
  } catch (error) {
    note(failureLine(err, describeFailure(error, addressFrom(context))));
    // A run that failed to start stays "stopped" on the server; don't leave it behind.
    if (isRuntimeKernelError(error, "START_FAILED") && context.values.keep !== true) {
      await client.destroy(id).catch(() => {});
    }
    return undefined;
  }
}

/** Ctrl-C (or SIGTERM, SIGHUP) stops the workload gracefully, a second kills it, a third gives up; returns the remover. */
function forwardSignals(run: Foreground, graceMs: number | undefined): () => void {
  const { context, client, id } = run;
  const { err, note } = context;
  let interrupts = 0;
  return context.io.onSignal((signal) => {
    interrupts++;
    if (interrupts === 1) {
      const grace = graceMs === undefined ? "" : ` (grace ${formatDuration(graceMs)})`;
      run.progress(
        err.yellow(
          signal === "SIGINT"
            ? `stopping${grace}; press Ctrl-C again to kill it`
            : `${signal}: stopping${grace}`,
        ),
      );
      client.stop(id, graceMs === undefined ? {} : { graceMs }).catch(() => {});
    } else if (interrupts === 2) {
      run.progress(err.red("killing"));
      client.stop(id, { graceMs: 0 }).catch(() => {});
    } else {
      // The server keeps the workload; say so rather than hang.
      note(err.red(`giving up; ${id} may still be stopping on the server`));
      process.exit(130);
    }
  });
}

/** The output of each run, streamed while it runs (stdout to stdout, stderr to stderr); a restart starts a new stream. */
class OutputStreams {
  readonly #run: Foreground;
  readonly #signal: AbortSignal;
  readonly #streams: Promise<void>[] = [];

  constructor(run: Foreground, signal: AbortSignal) {
    this.#run = run;
    this.#signal = signal;
  }

  /** Streams the current run's output until it ends or the signal aborts. */
  follow(): void {
    const { context, client, id, quiet } = this.#run;
    const { io, err, note } = context;
    const signal = this.#signal;
    this.#streams.push(
      (async () => {
        try {
          for await (const entry of client.logs(id, { follow: true, signal })) {
            (entry.stream === "stderr" ? io.stderr : io.stdout).write(`${entry.line}\n`);
          }
        } catch (error) {
          if (!signal.aborted && !quiet)
            note(err.dim(`(logs unavailable: ${describeFailure(error, addressFrom(context))})`));
        }
      })(),
    );
  }

  /** Resolves once every stream has ended, or after `ms`. */
  drained(ms: number): Promise<unknown> {
    return Promise.race([Promise.all(this.#streams), new Promise((r) => setTimeout(r, ms).unref())]);
  }
}

/** Follows the workload's transitions until its run (or the last of its restarts) stops or it is destroyed. */
async function followToEnd(
  run: Foreground,
  created: WorkloadStatus,
  output: OutputStreams,
  signal: AbortSignal,
): Promise<Ending> {
  const { client, id } = run;
  const { err } = run.context;
  let status = created;
  const ours = { runIds: new Set([status.runId]), firstSeq: undefined as number | undefined };
  try {
    // From the start of what is retained, keeping only this workload's runs: nothing that
    // happened between create() and this subscription is missed.
    for await (const event of client.events({ workloadId: id, sinceSeq: 0, signal })) {
      if (!belongsToUs(event, ours)) continue;
      if (event.state === "running" && event.from === "starting" && event.runId !== status.runId) {
        status = { ...status, runId: event.runId };
        run.progress(err.green(`running (restart ${event.restart ?? "?"})`));
        output.follow();
      }
      if (event.state === "stopped" || event.state === "destroyed") {
        const current = await client.get(id).catch(() => undefined);
        if (event.state === "stopped" && current?.restartAt !== undefined) {
          run.progress(
            err.yellow(
              `${describeStop(event)}; restarting in ${formatDuration(current.restartAt - Date.now())}`,
            ),
          );
          continue;
        }
        const final = current && current.runId === event.runId ? current : eventAsStatus(event, status);
        return { final, endedAt: event.at, lostServer: undefined };
      }
    }
  } catch (error) {
    return { final: undefined, endedAt: undefined, lostServer: error };
  }
  return { final: undefined, endedAt: undefined, lostServer: undefined };
}

/** Says how the workload ended, destroys it unless --keep, and returns the code `run` exits with. */
async function reportEnd(run: Foreground, ending: Ending): Promise<number> {
  const { context, client, id, quiet } = run;
  const { err, note } = context;
  const { final, endedAt, lostServer } = ending;
  if (lostServer !== undefined || final === undefined) {
    note(
      failureLine(
        err,
        `lost track of workload "${id}": ${describeFailure(lostServer, addressFrom(context))}`,
      ),
    );
    return EXIT_RUNTIME_FAILURE;
  }
  const code = exitCodeOf(final);
  const stoppedAt = final.stoppedAt ?? endedAt;
  const elapsed = final.startedAt && stoppedAt ? ` in ${formatDuration(stoppedAt - final.startedAt)}` : "";
  const summary = `${describeStop(final)}${elapsed}`;
  if (!quiet) {
    const failed = isFailure(final.stopReason) || code !== 0;
    note(`${failed ? err.red("✖") : err.green("✔")} ${err.bold(id)} ${failed ? err.red(summary) : summary}`);
  }
  if (final.error && final.stopReason === "start_failed") note(err.red(`  ${final.error.message}`));
  if (context.values.keep !== true && final.state !== "destroyed") {
    await client.destroy(id).catch((error: unknown) => {
      note(err.yellow(`could not destroy ${id}: ${describeFailure(error, addressFrom(context))}`));
    });
  }
  return code;
}

/** Events of our runs: the one we created, and the restarts that follow it (never an older run of the same id). */
function belongsToUs(
  event: TransitionEvent,
  ours: { runIds: Set<string>; firstSeq: number | undefined },
): boolean {
  if (ours.runIds.has(event.runId)) {
    ours.firstSeq ??= event.seq;
    return true;
  }
  if (
    ours.firstSeq !== undefined &&
    event.seq > ours.firstSeq &&
    event.from === null &&
    event.restart !== undefined
  ) {
    ours.runIds.add(event.runId);
    return true;
  }
  return false;
}

function describeStop(s: { stopReason?: string; exitCode?: number; signal?: string }): string {
  const exit = describeExit(s);
  return ["stopped", s.stopReason, exit].filter(Boolean).join(" · ");
}

function eventAsStatus(event: TransitionEvent, status: WorkloadStatus): WorkloadStatus {
  return {
    ...status,
    runId: event.runId,
    state: event.state,
    ...(event.exitCode !== undefined ? { exitCode: event.exitCode } : {}),
    ...(event.signal !== undefined ? { signal: event.signal } : {}),
    ...(event.stopReason !== undefined ? { stopReason: event.stopReason } : {}),
    ...(event.error !== undefined ? { error: event.error } : {}),
  };
}
