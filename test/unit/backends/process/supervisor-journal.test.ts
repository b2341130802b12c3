import * as crypto from "node:crypto";
import { createHmac } from "node:crypto";
import * as realFs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type {
  JournalEntry,
  RunRecord,
  WireError,
  WireExit,
} from "../../../../src/backends/process/protocol.js";
import {
  createJournal,
  parseJournalLine,
  signedLine,
} from "../../../../src/backends/process/supervisor-journal.js";
import { ManualClock } from "../../../../src/testing/index.js";

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

/** A journal in a fresh temp dir, on the real filesystem; `writes` can make write(2) fail. */
function journalIn(dir: string, clock = new ManualClock()) {
  const calls = { warned: [] as string[], refused: [] as Array<[string, WireError]>, diag: [] as string[] };
  const failing = { errno: undefined as string | undefined };
  const fs = {
    ...realFs,
    writeSync: ((...args: Parameters<typeof realFs.writeSync>) => {
      if (failing.errno !== undefined)
        throw Object.assign(new Error(`${failing.errno}: no room`), { code: failing.errno });
      return (realFs.writeSync as (...a: unknown[]) => number)(...args);
    }) as typeof realFs.writeSync,
  } as typeof realFs;
  const journal = createJournal<string>({
    fs,
    crypto,
    path: join(dir, "journal.ndjson"),
    keyPath: join(dir, "journal.key"),
    clock,
    diag: (message) => calls.diag.push(message),
    warn: (message) => calls.warned.push(message),
    refuse: (tag, failure) => calls.refused.push([tag, failure]),
  });
  return { journal, calls, failing, clock, file: join(dir, "journal.ndjson") };
}

/** Opens a journal as the supervisor does at start-up: key, replay, compaction. */
function started(dir: string, clock?: ManualClock) {
  const j = journalIn(dir, clock);
  j.journal.loadKey();
  const replayed = j.journal.replay();
  expect(j.journal.compact(replayed.runs.values())).toBe(true);
  return { ...j, replayed };
}

const exit: WireExit = { exitCode: 3, at: 1.5 };
const spawnOf = (runId: string) => ({
  op: "spawn" as const,
  runId,
  stdoutPath: `/l/${runId}.out`,
  stderrPath: `/l/${runId}.err`,
});

describe("the journal", () => {
  let dir: string;
  beforeEach(() => {
    dir = realFs.mkdtempSync(join(tmpdir(), "rk-journal-"));
  });
  afterEach(() => realFs.rmSync(dir, { recursive: true, force: true }));

  it("makes its key once, private to its user, and refuses a key file that is not a key", () => {
    const { journal } = journalIn(dir);
    journal.loadKey();
    const key = realFs.readFileSync(join(dir, "journal.key"), "latin1");
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(realFs.statSync(join(dir, "journal.key")).mode & 0o777).toBe(0o600);
    journalIn(dir).journal.loadKey();
    expect(realFs.readFileSync(join(dir, "journal.key"), "latin1")).toBe(key);
    realFs.writeFileSync(join(dir, "journal.key"), "not a key");
    expect(() => journalIn(dir).journal.loadKey()).toThrow(/journal\.key is not a journal key: remove it/);
  });

  it("replays what was written: runs with their exits, removals gone, spawns without a start left to kill", () => {
    const { journal } = started(dir);
    journal.append(spawnOf("r1"));
    journal.append({ op: "start", run }, "r1");
    journal.append(spawnOf("r2"));
    journal.append({ op: "exit", runId: "r1", exit });
    journal.append(spawnOf("r3"));
    journal.append({ op: "start", run: { ...run, runId: "r3" } });
    journal.append({ op: "remove", runId: "r3" });
    expect(journal.flush()).toBe(true);

    const replayed = journalIn(dir).journal;
    replayed.loadKey();
    const { runs, unrecorded, skipped, warning } = replayed.replay();
    expect([...runs.entries()]).toEqual([["r1", { record: run, exit }]]);
    expect(unrecorded).toEqual(["/l/r2.out", "/l/r2.err"]);
    expect(skipped).toEqual([]);
    expect(warning).toBeUndefined();
  });

  it("skips the lines it did not sign, by line number, and says so", () => {
    const { journal, file } = started(dir);
    journal.append({ op: "start", run });
    journal.flush();
    realFs.appendFileSync(file, `${JSON.stringify({ op: "start", run: { ...run, runId: "forged" } })}\n`);
    const again = journalIn(dir).journal;
    again.loadKey();
    const { runs, skipped, warning } = again.replay();
    expect([...runs.keys()]).toEqual(["r1"]);
    expect(skipped).toEqual([
      "line 2: not signed with this state dir's journal.key (written by something else than its supervisor)",
    ]);
    expect(warning).toMatch(
      /^Skipped 1 line\(s\) of .*journal\.ndjson that are not records it trusts: line 2: /,
    );
  });

  it("compacts to the runs it is given, and replays the same after", () => {
    const { journal, file } = started(dir);
    for (let i = 0; i < 3; i++) {
      journal.append({ op: "start", run: { ...run, runId: `r${i}` } });
      journal.append({ op: "exit", runId: `r${i}`, exit });
    }
    journal.append({ op: "remove", runId: "r0" });
    journal.flush();
    const kept = [{ record: { ...run, runId: "r2" }, exit }];
    expect(journal.compact(kept)).toBe(true);
    expect(realFs.readFileSync(file, "utf8").trim().split("\n")).toHaveLength(2);
    const again = journalIn(dir).journal;
    again.loadKey();
    expect([...again.replay().runs.values()]).toEqual(kept);
  });

  it("compacts by itself only once the file holds over 1,024 lines and four times what the runs need", () => {
    const { journal, file } = started(dir);
    const runs = new Map([["r1", { record: run, exit: null }]]);
    for (let i = 0; i < 1_024; i++) journal.append({ op: "remove", runId: `gone${i}` });
    journal.flush();
    journal.maybeCompact(runs);
    expect(realFs.readFileSync(file, "utf8").split("\n")).toHaveLength(1_025);
    journal.append({ op: "remove", runId: "one more" });
    journal.flush();
    journal.maybeCompact(runs);
    expect(realFs.readFileSync(file, "utf8").trim().split("\n")).toHaveLength(1);
  });

  it("cuts a torn last line when opened as it is", () => {
    const { journal, file } = started(dir);
    journal.append({ op: "start", run });
    journal.flush();
    journal.close();
    realFs.appendFileSync(file, '{"op":"exit","runId":"r1"');
    const again = journalIn(dir);
    again.journal.loadKey();
    again.journal.openAsIs(again.journal.replay().bytes);
    again.journal.append({ op: "exit", runId: "r1", exit });
    again.journal.flush();
    const third = journalIn(dir).journal;
    third.loadKey();
    const replayed = third.replay();
    expect(replayed.skipped).toEqual([]);
    expect(replayed.runs.get("r1")?.exit).toEqual(exit);
  });

  it("starts its next line on a new one when something else left the file without a newline", () => {
    const { journal, file } = started(dir);
    realFs.appendFileSync(file, "garbage");
    journal.append({ op: "start", run });
    journal.flush();
    const again = journalIn(dir).journal;
    again.loadKey();
    const replayed = again.replay();
    expect([...replayed.runs.keys()]).toEqual(["r1"]);
    expect(replayed.skipped).toEqual(["line 1: not JSON (a torn or garbled line)"]);
  });

  it("on a failed write: cuts back, refuses the starts waiting, keeps the rest, and writes it a second later", async () => {
    const { journal, calls, failing, clock, file } = started(dir);
    journal.append({ op: "start", run: { ...run, runId: "r0" } });
    journal.flush();
    const before = realFs.readFileSync(file, "utf8");
    failing.errno = "ENOSPC";
    journal.append({ op: "start", run }, "r1");
    journal.append({ op: "exit", runId: "r0", exit });
    expect(journal.flush()).toBe(false);
    const failure = {
      code: "RESOURCE_EXHAUSTED",
      message: `the supervisor cannot write its journal ${file} (ENOSPC: no room)`,
    };
    expect(journal.failure).toEqual(failure);
    expect(calls.refused).toEqual([["r1", failure]]);
    expect(calls.warned).toEqual([`${failure.message}: starts are refused until it can`]);
    expect(realFs.readFileSync(file, "utf8")).toBe(before);

    failing.errno = undefined;
    await clock.advance(999);
    expect(realFs.readFileSync(file, "utf8")).toBe(before);
    await clock.advance(1);
    expect(journal.failure).toBeUndefined();
    expect(calls.warned.at(-1)).toBe("the journal can be written again: starts are accepted");
    const again = journalIn(dir).journal;
    again.loadKey();
    const replayed = again.replay();
    expect([...replayed.runs.keys()]).toEqual(["r0"]);
    expect(replayed.runs.get("r0")?.exit).toEqual(exit);
  });

  it("takes back a line that was not written, and knows when its file was deleted", () => {
    const { journal, file } = started(dir);
    const line = journal.append(spawnOf("r1"));
    journal.withdraw(line);
    journal.flush();
    expect(realFs.readFileSync(file, "utf8")).toBe("");
    expect(journal.deleted()).toBe(false);
    realFs.unlinkSync(file);
    expect(journal.deleted()).toBe(true);
  });
});
