import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { JournalEntry, RunRecord } from "../../../../src/backends/process/protocol.js";
import { parseJournalLine, signedLine } from "../../../../src/backends/process/supervisor-journal.js";

const sign = (body: string) => createHmac("sha256", "k".repeat(64)).update(body).digest("base64url");
const other = (body: string) => createHmac("sha256", "x".repeat(64)).update(body).digest("base64url");

const run: RunRecord = {
  runId: "r1",
  workloadId: "w1",
  kernelId: "k",
  labels: { "runtime-kernel.dev/workload-id": "w1" },
  pid: 4242,
  startTime: 123456,
  bootId: "boot",
  stdoutPath: "/s/logs/w1.r1.stdout.log",
  stderrPath: "/s/logs/w1.r1.stderr.log",
  startedAt: 1_700_000_000_000,
  killAt: 1_700_000_060_000,
};

/** A line as the supervisor writes it, without its newline. */
const line = (entry: unknown, signer = sign) => signedLine(entry as JournalEntry, signer).slice(0, -1);

describe("the journal's lines", () => {
  it.each<JournalEntry>([
    { op: "spawn", runId: "r1", stdoutPath: run.stdoutPath, stderrPath: run.stderrPath },
    { op: "start", run },
    { op: "exit", runId: "r1", exit: { exitCode: 137, signal: "SIGKILL", at: 1.5 } },
    { op: "exit", runId: "r1", exit: { exitCode: null, lost: true, at: 2 } },
    { op: "remove", runId: "r1" },
  ])("read back what the supervisor writes: %j", (entry) => {
    const text = signedLine(entry, sign);
    expect(text.endsWith("}\n")).toBe(true);
    expect(parseJournalLine(text.slice(0, -1), sign)).toEqual({
      entry: { ...entry, mac: expect.any(String) },
    });
  });

  it.each([
    ["null", "not a record (null)"],
    ["42", "not a record (number)"],
    ['"text"', "not a record (string)"],
    ["[]", "not a record (an array)"],
    ["{}", "a record without op"],
    ['{"op":"chmod"}', 'an unknown op "chmod"'],
    ['{"op":"start","run":', "not JSON (a torn or garbled line)"],
    ["\u0000garbage", "not JSON (a torn or garbled line)"],
  ])("skip %s: %s", (text, problem) => {
    expect(parseJournalLine(text, sign)).toEqual({ problem });
  });

  it("trust no record that this state dir's supervisor did not sign", () => {
    const unsigned = JSON.stringify({ op: "start", run });
    const forged = line({ op: "start", run }).replace('"killAt":1700000060000', '"killAt":0');
    for (const text of [unsigned, line({ op: "start", run }, other), forged]) {
      expect(parseJournalLine(text, sign)).toEqual({
        problem:
          "not signed with this state dir's journal.key (written by something else than its supervisor)",
      });
    }
  });

  it.each([
    [{ ...run, pid: 1 }, "a bad pid, start time or boot id"],
    [{ ...run, pid: 0 }, "a bad pid, start time or boot id"],
    [{ ...run, pid: -5 }, "a bad pid, start time or boot id"],
    [{ ...run, pid: 4.5 }, "a bad pid, start time or boot id"],
    [{ ...run, startTime: "1" }, "a bad pid, start time or boot id"],
    [{ ...run, runId: "" }, "bad ids"],
    [{ ...run, labels: { a: 1 } }, "bad labels"],
    [{ ...run, stdoutPath: 7 }, "bad log paths"],
    [{ ...run, killAt: "soon" }, "bad times"],
  ])("refuse a signed start record that is not one: %j", (bad, what) => {
    expect(parseJournalLine(line({ op: "start", run: bad }), sign)).toEqual({
      problem: `start record with ${what}`,
    });
  });

  it("refuse signed spawn, exit and remove records that are not ones", () => {
    expect(parseJournalLine(line({ op: "exit", runId: "r1", exit: { exitCode: -1, at: 1 } }), sign)).toEqual({
      problem: "exit record with a bad exit",
    });
    expect(parseJournalLine(line({ op: "exit", runId: "r1" }), sign)).toEqual({
      problem: "exit record with no run id or no exit",
    });
    expect(parseJournalLine(line({ op: "remove" }), sign)).toEqual({
      problem: "remove record with no run id",
    });
    expect(parseJournalLine(line({ op: "spawn", runId: "r1" }), sign)).toEqual({
      problem: "spawn record with bad fields",
    });
  });
});
