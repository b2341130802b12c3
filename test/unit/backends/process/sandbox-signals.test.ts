import { describe, expect, it } from "vitest";
import {
  type ProcReader,
  sandboxExit,
  sandboxPhase,
} from "../../../../src/backends/process/sandbox-signals.js";

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

describe("the exit of a sandboxed run", () => {
  it("reads bubblewrap's 128 + n as the fatal signal n, as a shell reports it", () => {
    expect(sandboxExit({ exitCode: 143, at: 1 })).toEqual({ exitCode: 143, signal: "SIGTERM", at: 1 });
    expect(sandboxExit({ exitCode: 134, at: 1 })).toEqual({ exitCode: 134, signal: "SIGABRT", at: 1 });
  });

  it("keeps other codes, and what already names a signal or is lost", () => {
    for (const exit of [
      { exitCode: 0, at: 1 },
      { exitCode: 128, at: 1 },
      // 128 + SIGCHLD: no signal ends a process that way.
      { exitCode: 145, at: 1 },
      { exitCode: 255, at: 1 },
      { exitCode: 137, signal: "SIGKILL", at: 1 },
      { exitCode: null, lost: true, at: 1 },
    ]) {
      expect(sandboxExit(exit)).toEqual(exit);
    }
  });
});
