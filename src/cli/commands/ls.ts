/**
 * `runtime-kernel ls` and `runtime-kernel get`: what the kernel holds, as a table for a
 * person or JSON for a script.
 * @module
 */
import { WORKLOAD_STATES, WorkloadNotFoundError, type WorkloadState } from "../../index.js";
import { CLIENT_OPTIONS, type Command, listOption, stringOption, UsageError } from "../command.js";
import { connect } from "../connect.js";
import { STATUS_HEADER, statusRows, table } from "../format.js";

/** `runtime-kernel ls`. */
export const lsCommand: Command = {
  name: "ls",
  aliases: ["ps"],
  summary: "list workloads",
  usage: "ls [options]",
  description: "Lists the workloads the kernel knows: live ones, and stopped ones until destroyed or reaped.",
  options: {
    owner: { type: "string", value: "OWNER", description: "only this owner's workloads" },
    profile: { type: "string", short: "p", value: "NAME", description: "only this profile's workloads" },
    state: {
      type: "string",
      short: "s",
      value: "STATE",
      multiple: true,
      description: `only workloads in this state (${WORKLOAD_STATES.join(", ")})`,
    },
    json: { type: "boolean", description: "print a JSON array of statuses" },
    quiet: { type: "boolean", short: "q", description: "print only the workload ids" },
    ...CLIENT_OPTIONS,
  },
  examples: [
    "runtime-kernel ls",
    "runtime-kernel ls --state running --owner alice",
    "runtime-kernel ls --json | jq .",
  ],
  async run(context) {
    const states = listOption(context, "state");
    for (const state of states) {
      if (!(WORKLOAD_STATES as readonly string[]).includes(state)) {
        throw new UsageError(`--state must be one of ${WORKLOAD_STATES.join(", ")} (got "${state}")`, "ls");
      }
    }
    const owner = stringOption(context, "owner");
    const profile = stringOption(context, "profile");
    const client = connect(context);
    try {
      const statuses = await client.list({
        owner,
        profile,
        ...(states.length > 0 ? { state: states as WorkloadState[] } : {}),
      });
      if (context.values.json === true) context.print(JSON.stringify(statuses, null, 2));
      else if (context.values.quiet === true) for (const s of statuses) context.print(s.workloadId);
      else if (statuses.length === 0) context.note(context.err.dim("no workloads"));
      else context.print(table(STATUS_HEADER, statusRows(statuses, context.out, Date.now()), context.out));
      return 0;
    } finally {
      client.close();
    }
  },
};

/** `runtime-kernel get`. */
export const getCommand: Command = {
  name: "get",
  summary: "print one workload's status as JSON",
  usage: "get [options] WORKLOAD",
  options: { ...CLIENT_OPTIONS },
  examples: ["runtime-kernel get job-1"],
  async run(context) {
    const [id, ...rest] = context.positionals;
    if (id === undefined || rest.length > 0) throw new UsageError("get takes exactly one workload id", "get");
    const client = connect(context);
    try {
      const status = await client.get(id);
      // Reported as every command reports it (the server answers Get for an unknown id with nothing).
      if (status === undefined) throw new WorkloadNotFoundError(id);
      context.print(JSON.stringify(status, null, 2));
      return 0;
    } finally {
      client.close();
    }
  },
};
