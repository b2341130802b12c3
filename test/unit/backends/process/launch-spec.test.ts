import { describe, expect, it } from "vitest";
import {
  commandOf,
  DEFAULT_INHERITED_ENV,
  environmentOf,
  logPathsOf,
  withLimits,
  workingDirectoryOf,
} from "../../../../src/backends/process/launch-spec.js";
import type { StartRequest } from "../../../../src/index.js";

const base: StartRequest = {
  kernelId: "k",
  workloadId: "w",
  runId: "r",
  profile: "p",
  runnable: { command: ["sleep", "1"] },
  env: {},
  labels: {},
};
const req = (over: Partial<StartRequest>): StartRequest => ({ ...base, ...over });

describe("the workload's environment", () => {
  const host = {
    PATH: "/usr/bin",
    HOME: "/root",
    LANG: "C.UTF-8",
    AWS_SECRET_ACCESS_KEY: "host-secret",
    TZ: undefined,
  };

  it("holds only the allowlisted host variables that are set, then the request's env over them", () => {
    const env = environmentOf(req({ env: { PATH: "/opt/bin", TOKEN: "t" } }), DEFAULT_INHERITED_ENV, host);
    expect(env).toEqual({ PATH: "/opt/bin", HOME: "/root", LANG: "C.UTF-8", TOKEN: "t" });
  });

  it("inherits nothing else of the host, whatever it holds", () => {
    expect(environmentOf(req({}), [], host)).toEqual({});
    expect(environmentOf(req({}), ["AWS_SECRET_ACCESS_KEY"], host)).toEqual({
      AWS_SECRET_ACCESS_KEY: "host-secret",
    });
  });

  it("defaults to PATH, HOME, LANG, TZ and TMPDIR", () => {
    expect(DEFAULT_INHERITED_ENV).toEqual(["PATH", "HOME", "LANG", "TZ", "TMPDIR"]);
  });

  it("refuses bad names and values naming the variable, never quoting the value", () => {
    const bad = req({ env: { "A=B": "x", GOOD: "fine", NUL: "sec\0ret-value" } });
    expect(() => environmentOf(bad, [], {})).toThrowError(/env\.A=B.*env\.NUL/);
    try {
      environmentOf(bad, [], {});
    } catch (error) {
      expect((error as Error).message).not.toContain("ret-value");
      expect((error as { code: string }).code).toBe("INVALID_SPEC");
    }
  });
});

describe("the argv", () => {
  it("is taken as is (never through a shell)", () => {
    expect(commandOf(req({ runnable: { command: ["echo", "$HOME; rm -rf /"] } }))).toEqual([
      "echo",
      "$HOME; rm -rf /",
    ]);
  });

  it.each([
    [undefined, "runnable.command"],
    [[], "runnable.command"],
    [[""], "runnable.command[0]"],
    [["echo", 3], "runnable.command[1]"],
    [["echo", "a\0b"], "runnable.command[1]"],
  ])("refuses %j, naming %s", (command, field) => {
    expect(() => commandOf(req({ runnable: { command: command as string[] } }))).toThrowError(field);
  });
});

describe("the working directory", () => {
  it("is the workspace, else the fallback", () => {
    expect(workingDirectoryOf(req({ workspace: "/ws" }), "/fallback")).toBe("/ws");
    expect(workingDirectoryOf(req({}), "/fallback")).toBe("/fallback");
  });

  it("takes runnable.cwd relative to the workspace, or as an absolute path", () => {
    expect(
      workingDirectoryOf(req({ workspace: "/ws", runnable: { command: ["x"], cwd: "sub" } }), "/f"),
    ).toBe("/ws/sub");
    expect(
      workingDirectoryOf(req({ workspace: "/ws", runnable: { command: ["x"], cwd: "/abs" } }), "/f"),
    ).toBe("/abs");
  });

  it("refuses an empty runnable.cwd", () => {
    expect(() => workingDirectoryOf(req({ runnable: { command: ["x"], cwd: "" } }), "/f")).toThrowError(
      "runnable.cwd",
    );
  });
});

describe("log paths", () => {
  it("name the workload and the run, one file per stream", () => {
    expect(logPathsOf("/logs", "agent-1", "0b5c-77")).toEqual({
      stdout: "/logs/agent-1.0b5c-77.stdout.log",
      stderr: "/logs/agent-1.0b5c-77.stderr.log",
    });
  });

  it("stay inside the log dir and distinct whatever the ids hold", () => {
    const a = logPathsOf("/logs", "w", "../../etc/passwd");
    const b = logPathsOf("/logs", "w", "__.._etc_passwd");
    expect(a.stdout.startsWith("/logs/w.")).toBe(true);
    expect(a.stdout.slice("/logs/".length)).not.toContain("/");
    expect(a.stdout).not.toBe(b.stdout);
  });
});

describe("resource limits", () => {
  it("leave the argv alone when there are none", () => {
    expect(withLimits(["sleep", "1"], undefined, "/usr/bin/prlimit", base)).toEqual(["sleep", "1"]);
  });

  it("run the argv under prlimit with soft and hard limits, the runnable's over the backend's", () => {
    const request = req({ runnable: { command: ["x"], rlimits: { nofile: 64 } } });
    expect(withLimits(["x"], { nofile: 1024, core: 0 }, "/usr/bin/prlimit", request)).toEqual([
      "/usr/bin/prlimit",
      "--nofile=64:64",
      "--core=0:0",
      "--",
      "x",
    ]);
  });

  it("refuse unknown or negative limits, naming the field", () => {
    expect(() => withLimits(["x"], { stack: 1 } as never, "p", base)).toThrowError(
      "rlimits.stack: unknown limit",
    );
    const request = req({ runnable: { command: ["x"], rlimits: { nofile: -1 } } });
    expect(() => withLimits(["x"], {}, "p", request)).toThrowError("runnable.rlimits.nofile");
  });
});
