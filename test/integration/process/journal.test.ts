/**
 * The journal is the supervisor's memory of which process groups are its workloads. Lines
 * that are not records, and records no supervisor of the state dir wrote, are skipped and
 * reported: they never keep a supervisor from starting, and never name a process for it
 * to signal.
 */
import { spawn } from "node:child_process";
import { appendFileSync, closeSync, existsSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ProcessBackend } from "../../../src/backends/process/index.js";
import { createRuntimeKernel, LABELS } from "../../../src/index.js";
import { eventually, isRunning, journalProblems, newBackend, signedJournal, teardown } from "./helpers.js";

const backends: ProcessBackend[] = [];
const strangers: number[] = [];
afterEach(async () => {
  for (const pid of strangers.splice(0)) if (isRunning(pid)) process.kill(pid, "SIGKILL");
  await Promise.all(backends.splice(0).map((b) => teardown(b)));
});

/** A backend whose state dir holds one live workload of kernel "j" (`kept`), its supervisor then killed. */
async function journalWithOneWorkload(): Promise<{ stateDir: string; journal: string; pid: number }> {
  const first = newBackend();
  const kernel = createRuntimeKernel({
    backend: first,
    kernelId: "j",
    profiles: { p: { runnable: { command: ["sleep", "600"] } } },
  });
  const { pid } = await first.supervisorStats();
  await kernel.create({ workloadId: "kept", profile: "p" });
  await kernel.shutdown({ leaveRunning: true });
  process.kill(pid, "SIGKILL");
  await eventually(() => !isRunning(pid), 5_000, "the supervisor to die");
  return { stateDir: first.stateDir, journal: join(first.stateDir, "journal.ndjson"), pid };
}

/** A process group that no supervisor started: its leader's pid and start time. */
function stranger(): { pid: number; startTime: number } {
  const child = spawn("sleep", ["600"], { stdio: "ignore", detached: true });
  const pid = child.pid as number;
  strangers.push(pid);
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  return { pid, startTime: Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]) };
}

function forgedStart(runId: string, pid: number, startTime: number, fields: object = {}) {
  return {
    op: "start",
    run: {
      runId,
      workloadId: runId,
      kernelId: "j",
      labels: {
        [LABELS.kernelId]: "j",
        [LABELS.workloadId]: runId,
        [LABELS.runId]: runId,
        [LABELS.profile]: "p",
      },
      pid,
      startTime,
      bootId: readFileSync("/proc/sys/kernel/random/boot_id", "latin1").trim(),
      stdoutPath: "/tmp/forged.out",
      stderrPath: "/tmp/forged.err",
      startedAt: Date.now(),
      ...fields,
    },
  };
}

describe("the journal", () => {
  it("skips the lines that are not records, reports them on the kernel's error event, and keeps every record", async () => {
    const { stateDir, journal } = await journalWithOneWorkload();
    const junk = ["null", "42", "{}", '{"op":"start"}', '"text"', "[]", '{"op":"exit","runId":'];
    const lines = readFileSync(journal, "utf8").split("\n").filter(Boolean);
    writeFileSync(journal, [junk[0], ...lines, ...junk.slice(1)].map((l) => `${l}\n`).join(""));

    const backend = newBackend({ stateDir });
    backends.push(backend);
    const kernel = createRuntimeKernel({
      backend,
      kernelId: "j",
      profiles: { p: { runnable: { command: ["sleep", "600"] } } },
    });
    const errors: Error[] = [];
    kernel.on("error", (error) => errors.push(error));
    const report = await kernel.recover();
    expect(report.adopted.map((s) => s.workloadId)).toEqual(["kept"]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: "BACKEND_ERROR" });
    expect(errors[0]?.message).toContain(`Skipped 7 line(s) of ${journal}`);
    expect(errors[0]?.message).toContain("line 1: not a record (null)");
    expect(errors[0]?.message).toMatch(/line \d+: a record without op/);

    // Nothing is bricked: new workloads start, and the journal holds only records again.
    await kernel.create({ workloadId: "new", profile: "p" });
    expect(journalProblems(stateDir)).toEqual([]);
    await kernel.shutdown();
  });

  it("lets a new supervisor kill what the last one spawned but died before recording, found by its log files", async () => {
    const { stateDir, journal } = await journalWithOneWorkload();
    const stdoutPath = join(stateDir, "logs", "lost.unrecorded.stdout.log");
    const stderrPath = join(stateDir, "logs", "lost.unrecorded.stderr.log");
    // The workload as the dead supervisor left it: spawned, writing to its logs, not recorded.
    const out = openSync(stdoutPath, "a", 0o600);
    const err = openSync(stderrPath, "a", 0o600);
    const unrecorded = spawn("sleep", ["600"], { stdio: ["ignore", out, err], detached: true });
    closeSync(out);
    closeSync(err);
    strangers.push(unrecorded.pid as number);
    // Someone who only reads its output is not part of it.
    const reader = spawn("tail", ["-f", stdoutPath], { stdio: "ignore", detached: true });
    strangers.push(reader.pid as number);
    appendFileSync(
      journal,
      signedJournal(stateDir, [{ op: "spawn", runId: "unrecorded", stdoutPath, stderrPath }]),
    );

    const backend = newBackend({ stateDir });
    backends.push(backend);
    const found = await backend.discover({ kernelId: "j" });
    expect(found.map((f) => f.handle.workloadId)).toEqual(["kept"]);
    await eventually(() => !isRunning(unrecorded.pid as number), 5_000, "the unrecorded workload to die");
    expect(isRunning(reader.pid as number)).toBe(true);
    expect(existsSync(stdoutPath) || existsSync(stderrPath)).toBe(false);
  });

  it("never lets a forged record make the supervisor signal a process group it did not spawn", async () => {
    const { stateDir, journal } = await journalWithOneWorkload();
    const target = stranger();
    // A max-lifetime backstop long due, and a record the recovering kernel would reap as a leftover.
    appendFileSync(
      journal,
      [
        forgedStart("forged-kill-at", target.pid, target.startTime, { killAt: Date.now() - 60_000 }),
        forgedStart("forged-leftover", target.pid, target.startTime),
      ]
        .map((entry) => `${JSON.stringify(entry)}\n`)
        .join(""),
    );

    const backend = newBackend({ stateDir, lifetimeBackstopMs: 0 });
    backends.push(backend);
    const faults: Error[] = [];
    backend.watchFaults((error) => faults.push(error));
    const kernel = createRuntimeKernel({
      backend,
      kernelId: "j",
      profiles: { p: { runnable: { command: ["sleep", "600"] } } },
    });
    const report = await kernel.recover();
    // The supervisor has served further requests since it read the journal (its backstop
    // timer for a deadline in the past would have fired first).
    await backend.supervisorStats();
    expect(isRunning(target.pid)).toBe(true);
    expect(report.adopted.map((s) => s.workloadId)).toEqual(["kept"]);
    expect(report.reaped).toEqual([]);
    expect(faults).toHaveLength(1);
    expect(faults[0]?.message).toContain("Skipped 2 line(s)");
    expect(faults[0]?.message).toMatch(/line \d+: not signed with this state dir's journal.key/);
    await kernel.shutdown();
  });
});
