import { describe, expect, it } from "vitest";
import { sandboxExit } from "../../../../src/backends/process/sandbox-signals.js";

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
