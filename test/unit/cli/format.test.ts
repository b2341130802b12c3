import { describe, expect, it } from "vitest";
import { eventColumns, eventLine, formatDuration, parseDuration, table } from "../../../src/cli/format.js";
import { colorEnabled, createStyle, stripAnsi } from "../../../src/cli/style.js";
import type { TransitionEvent } from "../../../src/index.js";

describe("durations", () => {
  it.each([
    ["250", 250],
    ["250ms", 250],
    ["1.5s", 1_500],
    ["2m", 120_000],
    ["1h", 3_600_000],
  ])("parses %s", (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(["", "soon", "-1s", "5d", "1 s s"])("refuses %j", (text) =>
    expect(parseDuration(text)).toBeUndefined(),
  );

  it.each([
    [850, "850ms"],
    [2_040, "2.0s"],
    [192_000, "3m12s"],
    [18_120_000, "5h02m"],
    [273_600_000, "3d4h"],
  ])("shows %d ms as %s", (ms, text) => expect(formatDuration(ms)).toBe(text));
});

describe("colors", () => {
  it("are on for a terminal and off for a pipe", () => {
    expect(colorEnabled({ isTTY: true }, {})).toBe(true);
    expect(colorEnabled({ isTTY: false }, {})).toBe(false);
    expect(colorEnabled({ isTTY: true }, { TERM: "dumb" })).toBe(false);
  });

  it("honour NO_COLOR and FORCE_COLOR, and the flag above both", () => {
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: "1" })).toBe(false);
    expect(colorEnabled({ isTTY: false }, { FORCE_COLOR: "1" })).toBe(true);
    expect(colorEnabled({ isTTY: true }, { FORCE_COLOR: "0" })).toBe(false);
    expect(colorEnabled({ isTTY: false }, { FORCE_COLOR: "1" }, false)).toBe(false);
    expect(colorEnabled({ isTTY: false }, { NO_COLOR: "1" }, true)).toBe(true);
  });
});

describe("tables", () => {
  it("align columns on their visible width, colors or not", () => {
    const style = createStyle(true);
    const out = table(
      ["ID", "STATE", "X"],
      [
        ["a", style.green("running"), "1"],
        ["long-id", "stopped", "22"],
      ],
      style,
    );
    expect(stripAnsi(out).split("\n")).toEqual([
      "ID       STATE    X",
      "a        running  1",
      "long-id  stopped  22",
    ]);
  });
});

describe("event lines", () => {
  const event = (
    seq: number,
    workloadId: string,
    from: TransitionEvent["from"],
    state: TransitionEvent["state"],
  ) => ({ seq, workloadId, runId: "r", profile: "p", from, state, at: 0 }) as TransitionEvent;

  it("keep their columns aligned along a stream, colors or not", () => {
    for (const style of [createStyle(false), createStyle(true)]) {
      const columns = eventColumns();
      const lines = [
        event(7, "job-1", null, "starting"),
        event(8, "job-1", "starting", "running"),
        event(10, "a-much-longer-workload", "running", "stopping"),
        event(12, "job-1", "stopped", "destroyed"),
      ].map((e) =>
        stripAnsi(
          eventLine({ ...e, stopReason: e.state === "stopping" ? "requested" : undefined }, style, columns),
        ),
      );
      // Each column starts where it started on the line above, or further right once a wider value came.
      const starts = (line: string) => [line.indexOf("#"), line.search(/ (job-1|a-much)/), line.indexOf("→")];
      expect(starts(lines[0]!)).toEqual(starts(lines[1]!));
      expect(lines[2]!.indexOf("→")).toBeGreaterThan(lines[1]!.indexOf("→"));
      expect(starts(lines[3]!)).toEqual(starts(lines[2]!));
      expect(lines[1]!.endsWith(" starting  → running")).toBe(true);
      expect(lines[2]!.endsWith(" running   → stopping   requested")).toBe(true);
      expect(lines[3]!.endsWith(" stopped   → destroyed")).toBe(true);
    }
  });
});
