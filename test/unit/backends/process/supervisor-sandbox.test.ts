import { describe, expect, it } from "vitest";
import {
  lookAheadAt,
  type ProcReader,
  sandboxPhase,
  terminateSandbox,
} from "../../../../src/backends/process/supervisor-sandbox.js";
import type { Run, Supervisor } from "../../../../src/backends/process/supervisor-state.js";
import { ManualClock } from "../../../../src/testing/index.js";

const TERM_IGNORED = String(1 << 14);

/** A /proc/<pid>/stat line, as `env --ignore-signal=TERM cat /proc/self/stat` printed it, with `sigIgn` in its place. */
const stat = (name: string, sigIgn: string, pid = 12, state = "S") =>
  `${pid} (${name}) ${state} 11 22805 24456 0 -1 4194304 183 0 0 0 0 0 0 0 20 0 1 0 2570140 3133440 394 18446744073709551615 94180261171200 94180261191081 140726975625232 0 0 0 0 ${sigIgn} 0 0 0 0 17 1 0 0 0 0 0 94180261207088 94180261208704 94180830769152 140726975634146 140726975634166 140726975634166 140726975635435 0\n`;

/** A /proc with bwrap (pid 10), its init (11) and, when given, the init's first child (12). */
function proc(command?: { name: string; sigIgn: string }, leader = "bwrap", leaderState = "S"): ProcReader {
  const files: Record<string, string> = {
    "/proc/10/task/10/children": leaderState === "Z" ? "" : "11 ",
    "/proc/10/stat": stat(leader, TERM_IGNORED, 10, leaderState),
    "/proc/11/task/11/children": command ? "12 40 " : "",
    ...(command ? { "/proc/12/stat": stat(command.name, command.sigIgn) } : {}),
  };
  return (path) => {
    const text = files[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
    return text;
  };
}

/** The run's process as its handle has it: pid 10, started at 2,570,140 ticks after boot. */
const bwrap = { pid: 10, startTime: 2_570_140 };

describe("where a sandbox is", () => {
  it("is in setup until the command has SIGTERM back", () => {
    expect(sandboxPhase(bwrap, proc())).toBe("setup");
    expect(sandboxPhase(bwrap, proc({ name: "bwrap", sigIgn: TERM_IGNORED }))).toBe("setup");
    expect(sandboxPhase(bwrap, proc({ name: "env", sigIgn: TERM_IGNORED }))).toBe("setup");
    // env has reset SIGTERM and is about to exec the command: a SIGTERM now ends it.
    expect(sandboxPhase(bwrap, proc({ name: "env", sigIgn: "0" }))).toBe("running");
    expect(sandboxPhase(bwrap, proc({ name: "sleep", sigIgn: "0" }))).toBe("running");
  });

  it("is running once a command that ignores SIGTERM itself has run", () => {
    expect(sandboxPhase(bwrap, proc({ name: "sh", sigIgn: TERM_IGNORED }))).toBe("running");
  });

  it("is running when it is an earlier version's, whose shell around bwrap passes SIGTERM on", () => {
    expect(sandboxPhase(bwrap, proc({ name: "bwrap", sigIgn: TERM_IGNORED }, "sh"))).toBe("running");
  });

  it("is gone when bwrap is, has ended unreaped, or its pid is now another process's", () => {
    expect(sandboxPhase({ pid: 99 }, proc())).toBe("gone");
    expect(sandboxPhase(bwrap, proc(undefined, "bwrap", "Z"))).toBe("gone");
    expect(sandboxPhase({ pid: 10, startTime: 1 }, proc())).toBe("gone");
    expect(sandboxPhase({ pid: 10 }, proc())).toBe("setup");
  });

  it("is looked at again when a process of the chain went away meanwhile", () => {
    const read = proc({ name: "sleep", sigIgn: "0" });
    const racing: ProcReader = (path) => {
      if (path === "/proc/12/stat") throw new Error("ENOENT");
      return read(path);
    };
    expect(sandboxPhase(bwrap, racing)).toBe("setup");
  });
});

/**
 * A supervisor with what a sandbox's SIGTERM uses: a clock, a /proc whose sandbox (pid 10) is
 * in setup until `proc.now` says otherwise and counts its reads, and a signalRun that records.
 */
function supervisorOf() {
  const clock = new ManualClock();
  const signals: string[] = [];
  const proc = { now: proc0(), reads: 0 };
  const s = {
    clock,
    readProc: (path: string) => {
      proc.reads++;
      return proc.now(path);
    },
    sandboxes: { unseen: new Set(), timer: undefined, pauseMs: 50 },
    lib: {
      signalRun: (_s: Supervisor, run: Run, signal: string) => {
        signals.push(`${run.record.runId} ${signal}`);
        return true;
      },
    },
  } as unknown as Supervisor;
  const run = {
    record: { runId: "r1", ...bwrap },
    exit: null,
    orphan: false,
    exitWaiters: [],
  } as unknown as Run;
  return { s, clock, signals, proc, run };
}
const proc0 = () => proc({ name: "bwrap", sigIgn: TERM_IGNORED });
const running = () => proc({ name: "sleep", sigIgn: "0" });

describe("a sandbox's SIGTERM, sent by the supervisor", () => {
  it("waits until the command has SIGTERM back, then signals", async () => {
    const { s, clock, signals, proc: p, run } = supervisorOf();
    const reply = terminateSandbox(s, run, 30_000);
    await clock.advance(100);
    expect(signals).toEqual([]);
    p.now = running();
    await clock.advance(20);
    expect(signals).toEqual(["r1 SIGTERM"]);
    expect(await reply).toEqual({ delivered: true });
  });

  it("signals after the wait when the setup hangs, and at once when the run has exited", async () => {
    const { s, clock, signals, run } = supervisorOf();
    const reply = terminateSandbox(s, run, 1_000);
    await clock.advance(990);
    expect(signals).toEqual([]);
    await clock.advance(30);
    expect(await reply).toEqual({ delivered: true });
    run.exit = { exitCode: 0, at: 1 };
    expect(terminateSandbox(s, run, 1_000)).toEqual({ delivered: true });
    expect(signals).toEqual(["r1 SIGTERM", "r1 SIGTERM"]);
  });

  it("looks ahead at a sandbox after a burst of starts, until it runs, so that its stop reads no /proc", async () => {
    const { s, clock, signals, proc: p, run } = supervisorOf();
    lookAheadAt(s, run);
    await clock.advance(40);
    expect(p.reads).toBe(0); // not while starts may still come
    await clock.advance(20);
    const firstLook = p.reads;
    expect(firstLook).toBeGreaterThan(0); // looked: still in setup
    await clock.advance(80);
    expect(p.reads).toBe(firstLook); // the next look waits twice as long
    await clock.advance(40);
    expect(p.reads).toBeGreaterThan(firstLook);
    p.now = running();
    await clock.advance(200);
    expect(s.sandboxes.unseen.size).toBe(0);
    const reads = p.reads;
    await clock.advance(10_000);
    expect(p.reads).toBe(reads); // no more looks once seen running
    expect(terminateSandbox(s, run, 30_000)).toEqual({ delivered: true });
    expect(p.reads).toBe(reads);
    expect(signals).toEqual(["r1 SIGTERM"]);
  });
});
