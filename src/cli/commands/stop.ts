/**
 * `runtime-kernel stop` and `runtime-kernel destroy`: end workloads by id, several at once.
 * @module
 */
import type { RequestedStopReason } from "../../index.js";
import { CLIENT_OPTIONS, type Command, type CommandContext, stringOption, UsageError } from "../command.js";
import { addressFrom, connect, describeFailure, failureLine } from "../connect.js";
import { describeExit, parseDuration } from "../format.js";

const REASONS: readonly RequestedStopReason[] = ["requested", "idle_timeout", "max_lifetime", "shutdown"];

function graceOf(context: CommandContext, command: string): number | undefined {
  const text = stringOption(context, "grace");
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined)
    throw new UsageError(`--grace takes a duration such as 500ms or 10s (got "${text}")`, command);
  return ms;
}

/** Runs `action` on every id concurrently; prints a line per id; exit 1 if any failed. */
async function eachId(
  context: CommandContext,
  command: string,
  action: (id: string) => Promise<string>,
): Promise<number> {
  if (context.positionals.length === 0)
    throw new UsageError(`${command} needs at least one workload id`, command);
  const { err, out } = context;
  const results = await Promise.allSettled(context.positionals.map(action));
  let failures = 0;
  results.forEach((result, i) => {
    const id = context.positionals[i]!;
    if (result.status === "fulfilled") context.print(`${out.green("✔")} ${out.bold(id)} ${result.value}`);
    else {
      failures++;
      context.note(failureLine(err, describeFailure(result.reason, addressFrom(context)), id));
    }
  });
  return failures > 0 ? 1 : 0;
}

/** `runtime-kernel stop`. */
export const stopCommand: Command = {
  name: "stop",
  summary: "stop workloads (SIGTERM, then SIGKILL after the grace)",
  usage: "stop [options] WORKLOAD...",
  description:
    "Stops each workload and waits until it has stopped. Stopped workloads stay listed until destroyed, or\nuntil the server reaps them (its reapAfterMs: 60 s unless its config says otherwise).",
  options: {
    grace: {
      type: "string",
      short: "g",
      value: "DURATION",
      description: "grace before SIGKILL (default: the profile's)",
    },
    reason: {
      type: "string",
      value: "REASON",
      description: `stop reason: ${REASONS.join(", ")} (default: requested)`,
    },
    ...CLIENT_OPTIONS,
  },
  examples: ["runtime-kernel stop job-1", "runtime-kernel stop --grace 0 job-1 job-2"],
  async run(context) {
    const graceMs = graceOf(context, "stop");
    const reason = stringOption(context, "reason");
    if (reason !== undefined && !(REASONS as readonly string[]).includes(reason)) {
      throw new UsageError(`--reason must be one of ${REASONS.join(", ")} (got "${reason}")`, "stop");
    }
    const client = connect(context);
    try {
      return await eachId(context, "stop", async (id) => {
        const status = await client.stop(id, {
          graceMs,
          reason: reason as RequestedStopReason | undefined,
        });
        return ["stopped", status.stopReason, describeExit(status)].filter(Boolean).join(" · ");
      });
    } finally {
      client.close();
    }
  },
};

/** `runtime-kernel destroy`. */
export const destroyCommand: Command = {
  name: "destroy",
  aliases: ["rm"],
  summary: "stop (if live) and reclaim workloads",
  usage: "destroy [options] WORKLOAD...",
  description:
    "Stops each workload if it is live, then reclaims everything it holds, and waits until that is confirmed.",
  options: {
    grace: {
      type: "string",
      short: "g",
      value: "DURATION",
      description: "grace before SIGKILL if still live",
    },
    ...CLIENT_OPTIONS,
  },
  examples: [
    "runtime-kernel destroy job-1",
    "runtime-kernel destroy $(runtime-kernel ls -q --state stopped)",
  ],
  async run(context) {
    const graceMs = graceOf(context, "destroy");
    const client = connect(context);
    try {
      return await eachId(context, "destroy", async (id) => {
        await client.destroy(id, { graceMs });
        return "destroyed";
      });
    } finally {
      client.close();
    }
  },
};
