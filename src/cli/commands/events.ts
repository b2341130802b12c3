/**
 * `runtime-kernel events`: the live stream of transitions, one line each for a person,
 * one JSON object per line for a machine.
 * @module
 */
import { CLIENT_OPTIONS, type Command, stringOption, UsageError } from "../command.js";
import { connect } from "../connect.js";
import { eventColumns, eventLine } from "../format.js";

/** `runtime-kernel events`. */
export const eventsCommand: Command = {
  name: "events",
  summary: "follow transition events",
  usage: "events [options]",
  description: [
    "Prints transitions as they happen, until Ctrl-C. With --since, first replays the retained",
    "events after that seq: pass the last seq you saw to resume without missing any.",
  ].join("\n"),
  options: {
    workload: { type: "string", short: "w", value: "ID", description: "only this workload's events" },
    since: {
      type: "string",
      value: "SEQ",
      description: "replay retained events with a greater seq first (0: all)",
    },
    json: { type: "boolean", description: "one JSON event per line (for machines)" },
    ...CLIENT_OPTIONS,
  },
  examples: [
    "runtime-kernel events",
    "runtime-kernel events --workload job-1 --since 0",
    "runtime-kernel events --json | jq -c 'select(.state == \"stopped\")'",
  ],
  async run(context) {
    const since = stringOption(context, "since");
    if (since !== undefined && !/^\d+$/.test(since)) {
      throw new UsageError(`--since takes a seq number (got "${since}")`, "events");
    }
    const workloadId = stringOption(context, "workload");
    const json = context.values.json === true;
    const client = connect(context);
    const stop = new AbortController();
    const remove = context.io.onSignal(() => stop.abort());
    const columns = eventColumns();
    try {
      for await (const event of client.events({
        workloadId,
        ...(since !== undefined ? { sinceSeq: Number(since) } : {}),
        signal: stop.signal,
      })) {
        context.print(json ? JSON.stringify(event) : eventLine(event, context.out, columns));
      }
      return 0;
    } finally {
      remove();
      client.close();
    }
  },
};
