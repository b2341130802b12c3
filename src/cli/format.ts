/**
 * How the command shows things to a person: durations, tables, one line per transition.
 * Machines get `--json` instead, so nothing here needs to stay parseable.
 * @module
 */
import { type TransitionEvent, WORKLOAD_STATES, type WorkloadState, type WorkloadStatus } from "../index.js";
import type { ScheduleJob } from "../schedule/job.js";
import { type Style, stripAnsi } from "./style.js";

/** Parses `500`, `500ms`, `5s`, `2m`, `1h` (a bare number is milliseconds); undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(text.trim());
  if (!match) return undefined;
  const value = Number(match[1]);
  const unit = match[2] ?? "ms";
  const factor = unit === "h" ? 3_600_000 : unit === "m" ? 60_000 : unit === "s" ? 1_000 : 1;
  return Math.round(value * factor);
}

/** A short human duration: `850ms`, `2.0s`, `3m12s`, `5h02m`, `3d4h`. */
export function formatDuration(ms: number): string {
  if (ms < 0) ms = 0;
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`;
  const s = Math.floor(ms / 1_000);
  if (s < 3_600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86_400) return `${Math.floor(s / 3_600)}h${String(Math.floor((s % 3_600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3_600)}h`;
}

/** The color of a state: green while it runs, yellow in between, red for a failure. */
export function paintState(style: Style, state: WorkloadState, failed = false): string {
  switch (state) {
    case "running":
      return style.green(state);
    case "starting":
    case "stopping":
      return style.yellow(state);
    case "stopped":
      return failed ? style.red(state) : style.gray(state);
    case "destroyed":
      return style.dim(state);
  }
}

/** Whether a stop reason reads as a failure (red) rather than an ordinary end. */
export function isFailure(reason: string | undefined): boolean {
  return reason === "failed" || reason === "oom" || reason === "lost" || reason === "start_failed";
}

/** Lays out rows under a header, columns padded to their widest visible cell. */
export function table(header: string[], rows: string[][], style: Style): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => stripAnsi(r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) =>
        i === cells.length - 1 ? cell : cell + " ".repeat(widths[i]! - stripAnsi(cell).length),
      )
      .join("  ")
      .trimEnd();
  return [style.bold(line(header)), ...rows.map(line)].join("\n");
}

/** `exit 3`, `exit 143 (SIGTERM)`, or the empty string. */
export function describeExit(status: { exitCode?: number; signal?: string }): string {
  if (status.exitCode === undefined) return "";
  return status.signal ? `exit ${status.exitCode} (${status.signal})` : `exit ${status.exitCode}`;
}

/** The rows of `runtime-kernel ls`. */
export function statusRows(statuses: WorkloadStatus[], style: Style, now: number): string[][] {
  return statuses
    .slice()
    .sort((a, b) => a.createdAt - b.createdAt || a.workloadId.localeCompare(b.workloadId))
    .map((s) => {
      const since = s.state === "running" && s.startedAt ? s.startedAt : (s.stoppedAt ?? s.createdAt);
      return [
        s.workloadId,
        paintState(style, s.state, isFailure(s.stopReason)),
        s.profile,
        s.owner ?? style.dim("-"),
        formatDuration(now - since),
        describeExit(s) || style.dim("-"),
        s.stopReason ?? (s.restartAt ? `restart in ${formatDuration(s.restartAt - now)}` : style.dim("-")),
      ];
    });
}

/** The header of `runtime-kernel ls`. */
export const STATUS_HEADER = ["WORKLOAD", "STATE", "PROFILE", "OWNER", "SINCE", "EXIT", "REASON"];

function clock(at: number): string {
  const d = new Date(at);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/**
 * The widths of a stream of event lines: each column as wide as the widest value seen so far
 * (from a sensible minimum), so that the columns line up as the stream goes on.
 */
export interface EventColumns {
  seq: number;
  workload: number;
}

/** Fresh column widths for one stream of {@link eventLine}s. */
export function eventColumns(): EventColumns {
  return { seq: 4, workload: 10 };
}

/** The widest state: `from` and `to` are padded to it, so the arrows line up too. */
const STATE_WIDTH = Math.max(...WORKLOAD_STATES.map((s) => s.length));

/** Pads `text` with spaces to `width` visible characters (colors do not count). */
function pad(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - stripAnsi(text).length));
}

/**
 * One transition, as a person reads it, in columns kept by `columns` across a stream:
 * `12:00:01.234  #42   w1          starting  → running    restart 1`.
 */
export function eventLine(
  event: TransitionEvent,
  style: Style,
  columns: EventColumns = eventColumns(),
): string {
  const details: string[] = [];
  if (event.stopReason)
    details.push(isFailure(event.stopReason) ? style.red(event.stopReason) : event.stopReason);
  const exit = describeExit(event);
  if (exit) details.push(exit);
  if (event.restart !== undefined) details.push(`restart ${event.restart}`);
  if (event.recovered) details.push("recovered");
  if (event.ports)
    details.push(
      Object.entries(event.ports)
        .map(([k, v]) => `${k}=${v}`)
        .join(","),
    );
  if (event.error) details.push(style.red(`${event.error.code}: ${event.error.message}`));
  const from = event.from === null ? style.dim("·") : paintState(style, event.from);
  const to = paintState(style, event.state, isFailure(event.stopReason));
  const seq = `#${event.seq}`;
  columns.seq = Math.max(columns.seq, seq.length);
  columns.workload = Math.max(columns.workload, event.workloadId.length);
  return [
    style.gray(clock(event.at)),
    pad(style.gray(seq), columns.seq),
    pad(style.bold(event.workloadId), columns.workload),
    `${pad(from, STATE_WIDTH)} → ${pad(to, STATE_WIDTH)}`,
    details.join("  "),
  ]
    .join("  ")
    .trimEnd();
}

/** What a scheduled job calls: `METHOD URL`, or the workload's profile. */
export function jobTarget(job: ScheduleJob): string {
  return job.request ? `${job.request.method} ${job.request.url}` : `workload ${job.workload?.profile}`;
}

/** How a scheduled job's last firing went: the error while it is not completed, else the status code or workload. */
export function jobOutcome(job: ScheduleJob): string {
  if (job.error && job.status !== "completed") return job.error;
  if (job.result && "status_code" in job.result) return String(job.result.status_code);
  if (job.result && "workload_id" in job.result) return job.result.workload_id;
  return "";
}
