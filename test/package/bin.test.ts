import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ProcessBackend } from "../../src/backends/process/index.js";
import { exec } from "./support.js";

/**
 * The `runtime-kernel` command of the installed tarball, run as a user runs it: `npx
 * runtime-kernel ...` in the project, against an `npx runtime-kernel serve`.
 */
const { bare, version } = inject("pkg");

let home: string;
let env: NodeJS.ProcessEnv;
let serve: ChildProcess;

/** `npx runtime-kernel args` in its own process group, as a terminal runs a foreground job. */
function npx(args: string[]) {
  const child = spawn("npx", ["runtime-kernel", ...args], {
    cwd: bare,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk));
  /** How npx itself ended: what the user's shell reports. */
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once("exit", (code, signal) => done({ code, signal })),
  );
  /** Once every process holding its output (npm's and the command's) has ended. */
  const closed = new Promise<string>((done) => child.once("close", () => done(output)));
  const seen = (pattern: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const check = () => pattern.test(output) && resolve();
      child.stdout!.on("data", check);
      child.stderr!.on("data", check);
      child.once("close", () => reject(new Error(`ended before ${pattern}:\n${output}`)));
      check();
    });
  return { child, exit, closed, seen };
}

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "rk-package-bin-"));
  env = {
    PATH: process.env.PATH,
    HOME: home,
    XDG_RUNTIME_DIR: join(home, "run"),
    XDG_STATE_HOME: join(home, "state"),
    NO_COLOR: "1",
    // The bin is installed in the project: npx must not need the registry for it.
    npm_config_offline: "true",
  };
  const server = npx(["serve"]);
  serve = server.child;
  await server.seen(/serving runtime\.v1 on/);
});

afterAll(async () => {
  if (serve?.pid && serve.exitCode === null && serve.signalCode === null) {
    const closed = new Promise((r) => serve.once("close", r));
    process.kill(-serve.pid, "SIGTERM");
    await closed;
  }
  const stateDir = join(home, "state", "runtime-kernel", "default");
  if (existsSync(stateDir)) await new ProcessBackend({ stateDir }).stopSupervisor({ force: true });
  rmSync(home, { recursive: true, force: true });
});

describe("npx runtime-kernel", () => {
  it("prints the package's version", async () => {
    const result = await exec(bare, "npx", ["runtime-kernel", "--version"], env);
    expect(result).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it("runs a command and exits with its exit code", async () => {
    const result = await exec(
      bare,
      "npx",
      ["runtime-kernel", "run", "-q", "--", "sh", "-c", "echo hi; exit 3"],
      env,
    );
    expect(result).toMatchObject({ code: 3, stdout: "hi\n", stderr: "" });
  });

  it("on Ctrl-C ends as npm does (SIGINT, 130 in the shell), and the workload is still stopped and destroyed", async () => {
    const run = npx(["run", "--name", "via-npx", "--", "sleep", "60"]);
    await run.seen(/via-npx running/);
    // Ctrl-C: the terminal signals the whole foreground process group (npm, its shell, the command).
    process.kill(-run.child.pid!, "SIGINT");
    // npm's shell dies of the SIGINT, and npm re-raises it on itself: the shell reports 130,
    // whatever the command exits with (docs/cli.md explains why).
    expect(await run.exit).toEqual({ code: null, signal: "SIGINT" });
    // The command, which got the same SIGINT, still stops and destroys its workload.
    expect(await run.closed).toContain("✖ via-npx stopped · requested · exit 143 (SIGTERM)");
    const left = await exec(bare, "npx", ["runtime-kernel", "get", "via-npx"], env);
    expect(left).toMatchObject({ code: 1, stderr: 'error: No workload "via-npx" [WORKLOAD_NOT_FOUND]\n' });
  });
});
