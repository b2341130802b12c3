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
        ...(image !== undefined ? { image } : {}),
        ...(cwd !== undefined ? { cwd } : {}),
      },
      ...(owner !== undefined ? { owner } : {}),
      ...(env ? { env } : {}),
      ...(labels ? { labels } : {}),
      ...(workspace !== undefined ? { workspace } : {}),
      ...(graceMs !== undefined ? { graceMs } : {}),
      ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}),
      ...(maxLifetimeMs !== undefined ? { maxLifetimeMs } : {}),
    };
    const client = connect(context);
    try {
      return await runInForeground(context, client, spec, graceMs);
    } finally {
      client.close();
    }
  },
};

async function runInForeground(
  context: CommandContext,
  client: RuntimeClient,
  spec: WorkloadSpec,
  graceMs: number | undefined,
): Promise<number> {
  const { err, note, io } = context;
  const quiet = context.values.quiet === true;
  const id = spec.workloadId;
  const progress = (text: string) => {
    if (!quiet) note(`${err.cyan("›")} ${err.bold(id)} ${text}`);
  };

  let status: WorkloadStatus;
  try {
    // Reach the server first, so nothing says "starting" when there is no one to start it.
    await client.health();
    progress(err.dim(`starting (profile ${spec.profile})`));
    status = await client.create(spec);
  } catch (error) {
    note(failureLine(err, describeFailure(error, addressFrom(context))));
    // A run that failed to start stays "stopped" on the server; don't leave it behind.
    if (isRuntimeKernelError(error, "START_FAILED") && context.values.keep !== true) {
      await client.destroy(id).catch(() => {});
    }
    return EXIT_RUNTIME_FAILURE;
  }
  if (context.values.detach === true) {
    context.print(id);
    return 0;
  }

  const done = new AbortController();
  const ours = { runIds: new Set([status.runId]), firstSeq: undefined as number | undefined };
  let interrupts = 0;
  const removeSignal = io.onSignal((signal) => {
    interrupts++;
    if (interrupts === 1) {
      const grace = graceMs === undefined ? "" : ` (grace ${formatDuration(graceMs)})`;
      progress(
        err.yellow(
          signal === "SIGINT"
            ? `stopping${grace}; press Ctrl-C again to kill it`
            : `${signal}: stopping${grace}`,
        ),
      );
      client.stop(id, graceMs === undefined ? {} : { graceMs }).catch(() => {});
    } else if (interrupts === 2) {
      progress(err.red("killing"));
      client.stop(id, { graceMs: 0 }).catch(() => {});
    } else {
      // The server keeps the workload; say so rather than hang.
      note(err.red(`giving up; ${id} may still be stopping on the server`));
      process.exit(130);
    }
  });

  // Output of each run, streamed while it runs; a restart starts a new stream.
  const streams: Promise<void>[] = [];
  const streamLogs = () => {
    streams.push(
      (async () => {
        try {
          for await (const entry of client.logs(id, { follow: true, signal: done.signal })) {
            (entry.stream === "stderr" ? io.stderr : io.stdout).write(`${entry.line}\n`);
          }
        } catch (error) {
          if (!done.signal.aborted && !quiet)
            note(err.dim(`(logs unavailable: ${describeFailure(error, addressFrom(context))})`));
        }
      })(),
    );
  };
  streamLogs();
  progress(err.green("running"));

  let final: WorkloadStatus | undefined;
  let endedAt: number | undefined;
  let lostServer: unknown;
  try {
    // From the start of what is retained, keeping only this workload's runs: nothing that
    // happened between create() and this subscription is missed.
    for await (const event of client.events({ workloadId: id, sinceSeq: 0, signal: done.signal })) {
      if (!belongsToUs(event, ours)) continue;
      if (event.state === "running" && event.from === "starting" && event.runId !== status.runId) {
        status = { ...status, runId: event.runId };
        progress(err.green(`running (restart ${event.restart ?? "?"})`));
        streamLogs();
      }
      if (event.state === "stopped" || event.state === "destroyed") {
        const current = await client.get(id).catch(() => undefined);
        if (event.state === "stopped" && current?.restartAt !== undefined) {
          progress(
            err.yellow(
              `${describeStop(event)}; restarting in ${formatDuration(current.restartAt - Date.now())}`,
            ),
          );
          continue;
        }
        final = current && current.runId === event.runId ? current : eventAsStatus(event, status);
        endedAt = event.at;
        break;
      }
    }
  } catch (error) {
    lostServer = error;
  }

  // Let the output of the last run drain (its stream ends with the run), within reason.
  await Promise.race([Promise.all(streams), new Promise((r) => setTimeout(r, 2_000).unref())]);
  done.abort();
  removeSignal();

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
