import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProcessBackend } from "../../../src/backends/process/index.js";
import type { TransitionEvent, WorkloadStatus } from "../../../src/index.js";

/**
 * The `runtime-kernel` command, run as a real subprocess from source (`node --import tsx
 * src/cli.ts`), against a real `runtime-kernel serve` on the process backend.
 */
const ROOT = resolve(import.meta.dirname, "../../..");
// tsx by absolute URL: the commands run in a scratch directory, where `--import tsx` would not resolve.
const CLI = ["--import", import.meta.resolve("tsx"), join(ROOT, "src/cli.ts")];
// biome-ignore lint/suspicious/noControlCharactersInRegex: detecting ANSI escapes is the point.
const ANSI = /\u001b\[/;

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let dir: string;
let env: NodeJS.ProcessEnv;
let serve: ChildProcess;
let serveStderr = "";

/** Starts the CLI; `wait` resolves with its exit and output. */
function start(args: string[], extraEnv: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [...CLI, ...args], {
    cwd: dir,
    env: { ...env, ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    stdout += chunk;
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk;
  });
  const wait = new Promise<Result>((done) =>
    child.on("close", (code, signal) => done({ code, signal, stdout, stderr })),
  );
  /** Resolves once `pattern` has appeared on stdout or stderr. */
  const seen = (pattern: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (pattern.test(stdout) || pattern.test(stderr)) {
          child.stdout!.off("data", check);
          child.stderr!.off("data", check);
          resolve();
        }
      };
      child.stdout!.on("data", check);
      child.stderr!.on("data", check);
      child.on("close", () => reject(new Error(`exited before ${pattern}:\n${stdout}\n${stderr}`)));
      check();
    });
  return { child, wait, seen };
}

const cli = (args: string[], extraEnv?: NodeJS.ProcessEnv) => start(args, extraEnv).wait;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "rk-cli-"));
  // Everything the CLI finds by default lives in the test's own directory.
  env = {
    PATH: process.env.PATH,
    HOME: dir,
    XDG_RUNTIME_DIR: join(dir, "run"),
    XDG_STATE_HOME: join(dir, "state"),
  };
  serve = spawn(process.execPath, [...CLI, "serve"], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  serve.stderr!.on("data", (chunk: Buffer) => {
    serveStderr += chunk;
  });
  await new Promise<void>((resolve, reject) => {
    serve.stderr!.on("data", () => {
      if (serveStderr.includes("serving runtime.v1 on")) resolve();
    });
    serve.on("close", (code) => reject(new Error(`serve exited with ${code}:\n${serveStderr}`)));
  });
}, 60_000);

afterAll(async () => {
  if (serve && serve.exitCode === null && serve.signalCode === null) {
    const closed = new Promise((r) => serve.once("close", r));
    serve.kill("SIGTERM");
    const timer = setTimeout(() => serve.kill("SIGKILL"), 20_000);
    await closed;
    clearTimeout(timer);
  }
  // The process backend's supervisors outlive serve by design (for recovery); stop ours now
  // rather than leave them to their idle timeout.
  for (const kernelId of ["default", "second"]) {
    const stateDir = join(dir, "state", "runtime-kernel", kernelId);
    if (existsSync(stateDir))
      await new ProcessBackend({ stateDir }).stopSupervisor({ force: true }).catch(() => {});
  }
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("runtime-kernel serve", () => {
  it("listens on the user's private socket by default and says where", () => {
    expect(serveStderr).toContain(
      `serving runtime.v1 on unix:${join(dir, "run", "runtime-kernel", "runtime.sock")}`,
    );
    expect(serveStderr).toContain("backend process");
    expect(serveStderr).not.toMatch(ANSI);
  });

  it("refuses a config file with a bad field, naming it, and exits 2", async () => {
    const config = join(dir, "bad.yaml");
    writeFileSync(
      config,
      "backend: process\nprofiles:\n  agent:\n    runnable:\n      command: sleep 5\n    graceMs: -1\n",
    );
    const result = await cli(["serve", "--config", config, "--address", `unix:${join(dir, "bad.sock")}`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`Invalid config file ${config}`);
    expect(result.stderr).toContain("profiles.agent.runnable.command");
    expect(result.stderr).toContain("profiles.agent.graceMs: must be >= 0");
  });

  it("refuses a token file other users may read, naming it, and listens on nothing", async () => {
    const token = join(dir, "open-token");
    writeFileSync(token, "t0ken-for-tests\n", { mode: 0o644 });
    const socket = join(dir, "open-token.sock");
    const result = await cli(["serve", "--token-file", token, "--address", `unix:${socket}`]);
    expect(result).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(`token file ${token} is open to other users (mode 0644; want 0600`),
    });
    expect(result.stderr).not.toContain("t0ken-for-tests");
    expect(existsSync(socket)).toBe(false);
  });

  it("says that no kubeconfig was found, and where it looked, for --backend kubernetes", async () => {
    const result = await cli([
      "serve",
      "--backend",
      "kubernetes",
      "--address",
      `unix:${join(dir, "k8s.sock")}`,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `error: no kubeconfig found: KUBECONFIG is not set, ${join(dir, ".kube", "config")} does not exist, ` +
        "and there is no in-cluster service account (/var/run/secrets/kubernetes.io/serviceaccount/token); " +
        "set KUBECONFIG, or pass the kubeConfig option [BACKEND_UNAVAILABLE]\n",
    );
  });

  it("serves the profiles of a YAML config, and requires the token the config names", async () => {
    const config = join(dir, "rk.yaml");
    const address = `unix:${join(dir, "second.sock")}`;
    writeFileSync(join(dir, "token"), "t0ken-for-tests\n", { mode: 0o600 });
    writeFileSync(
      config,
      [
        "kernelId: second",
        `address: ${address}`,
        "tokenFile: token",
        "profiles:",
        "  greeter:",
        "    runnable: { command: [sh, -c, 'echo hello from $WHO'] }",
        "    env: { WHO: profile }",
      ].join("\n"),
    );
    const second = start(["serve", "--config", config, "--quiet"]);
    await second.seen(/serving runtime.v1 on/);
    try {
      const refused = await cli(["ls", "--address", address]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("refused the token");
      const ran = await cli(["run", "--address", address, "--profile", "greeter", "-q"], {
        RUNTIME_KERNEL_TOKEN: "t0ken-for-tests",
      });
      expect(ran).toMatchObject({ code: 0, stdout: "hello from profile\n", stderr: "" });
    } finally {
      second.child.kill("SIGTERM");
      expect((await second.wait).code).toBe(0);
    }
  });
});

describe("runtime-kernel run", () => {
  it("streams the command's output, shows its progress, and exits with its exit code", async () => {
    const result = await cli([
      "run",
      "-e",
      "WHO=world",
      "--",
      "sh",
      "-c",
      'echo "hello $WHO"; echo oops >&2; exit 3',
    ]);
    expect(result.code).toBe(3);
    expect(result.stdout).toBe("hello world\n");
    expect(result.stderr).toMatch(/› run-[0-9a-f]{8} starting \(profile default\)/);
    expect(result.stderr).toContain("oops\n");
    expect(result.stderr).toMatch(/✖ run-[0-9a-f]{8} stopped · failed · exit 3/);
    // Piped, so no colors.
    expect(result.stderr).not.toMatch(ANSI);
    // And destroyed once it ended: nothing is left behind.
    expect((await cli(["ls", "--json"])).stdout.trim()).toBe("[]");
  });

  it("colors its progress when FORCE_COLOR asks, and never when NO_COLOR or --no-color does", async () => {
    const [forced, none, flag] = await Promise.all([
      cli(["run", "--", "true"], { FORCE_COLOR: "1" }),
      cli(["run", "--", "true"], { NO_COLOR: "1" }),
      cli(["run", "--no-color", "--", "true"], { FORCE_COLOR: "1" }),
    ]);
    expect([forced.code, none.code, flag.code]).toEqual([0, 0, 0]);
    expect(forced.stderr).toMatch(ANSI);
    expect(none.stderr).not.toMatch(ANSI);
    expect(flag.stderr).not.toMatch(ANSI);
  });

  it("stops the workload gracefully on Ctrl-C and exits with the code it exited with", async () => {
    const run = start([
      "run",
      "--name",
      "interrupted",
      "--grace",
      "10s",
      "--",
      "sh",
      "-c",
      'trap "echo got TERM; exit 9" TERM; echo ready; while :; do sleep 0.05; done',
    ]);
    await run.seen(/ready/);
    run.child.kill("SIGINT");
    const result = await run.wait;
    expect(result.code).toBe(9);
    expect(result.stdout).toBe("ready\ngot TERM\n");
    expect(result.stderr).toContain("› interrupted stopping (grace 10.0s); press Ctrl-C again to kill it");
    expect(result.stderr).toContain("✖ interrupted stopped · requested · exit 9");
  });

  it("exits 143 after Ctrl-C stops a command that dies of the SIGTERM, as docs/cli.md says", async () => {
    const run = start(["run", "--name", "ctrl-c", "--", "sleep", "60"]);
    await run.seen(/ctrl-c running/);
    run.child.kill("SIGINT");
    const result = await run.wait;
    expect(result.code).toBe(143);
    expect(result.stderr).toContain("✖ ctrl-c stopped · requested · exit 143 (SIGTERM)");
  });

  it("stops and destroys the workload when its terminal closes (SIGHUP), leaving no orphan", async () => {
    const run = start(["run", "--name", "hung-up", "--", "sleep", "60"]);
    await run.seen(/hung-up running/);
    // The terminal is gone: what the command writes from now on goes nowhere.
    run.child.stdout!.destroy();
    run.child.stderr!.destroy();
    run.child.kill("SIGHUP");
    const result = await run.wait;
    expect(result).toMatchObject({ code: 143, signal: null });
    const left = await cli(["get", "hung-up"]);
    expect(left.stderr).toBe('error: No workload "hung-up" [WORKLOAD_NOT_FOUND]\n');
  });

  it("exits 125 when the command cannot start, and 2 when asked wrongly", async () => {
    const [missing, noCommand, badFlag, badDuration] = await Promise.all([
      cli(["run", "--", "/nonexistent/program"]),
      cli(["run"]),
      cli(["run", "--frobnicate", "--", "true"]),
      cli(["run", "--grace", "soon", "--", "true"]),
    ]);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toContain("START_FAILED");
    expect(noCommand.code).toBe(2);
    expect(noCommand.stderr).toContain("give a command after --");
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toBe("error: Unknown option '--frobnicate'\n  see runtime-kernel run --help\n");
    expect(badFlag.stderr).toContain("see runtime-kernel run --help");
    expect(badDuration.code).toBe(2);
    expect(badDuration.stderr).toContain('--grace takes a duration such as 500ms, 10s or 5m (got "soon")');
  });
});

describe("managing workloads", () => {
  it("lists, inspects, follows, stops and destroys them by id", async () => {
    const detached = await cli(["run", "-d", "--name", "sleeper", "--owner", "alice", "--", "sleep", "30"]);
    expect(detached).toMatchObject({ code: 0, stdout: "sleeper\n" });
    const kept = await cli([
      "run",
      "--keep",
      "--name",
      "ticker",
      "-q",
      "--",
      "sh",
      "-c",
      "for i in 1 2 3; do echo tick $i; done",
    ]);
    expect(kept).toMatchObject({ code: 0, stdout: "tick 1\ntick 2\ntick 3\n" });

    const table = await cli(["ls"]);
    expect(table.code).toBe(0);
    const [header, ...rows] = table.stdout.trim().split("\n");
    expect(header).toMatch(/^WORKLOAD\s+STATE\s+PROFILE\s+OWNER\s+SINCE\s+EXIT\s+REASON$/);
    expect(rows.find((r) => r.startsWith("sleeper"))).toMatch(/^sleeper\s+running\s+default\s+alice\s/);
    expect(rows.find((r) => r.startsWith("ticker"))).toMatch(
      /^ticker\s+stopped\s+default\s+-\s+\S+\s+exit 0\s+completed$/,
    );

    const [json, running, one, logs] = await Promise.all([
      cli(["ls", "--json"]),
      cli(["ls", "-q", "--state", "running"]),
      cli(["get", "ticker"]),
      cli(["logs", "--tail", "2", "ticker"]),
    ]);
    expect((JSON.parse(json.stdout) as WorkloadStatus[]).map((s) => s.workloadId).sort()).toEqual([
      "sleeper",
      "ticker",
    ]);
    expect(running.stdout).toBe("sleeper\n");
    expect(JSON.parse(one.stdout)).toMatchObject({ workloadId: "ticker", state: "stopped", exitCode: 0 });
    expect(logs.stdout).toBe("tick 2\ntick 3\n");

    const stopped = await cli(["stop", "--grace", "5s", "sleeper"]);
    expect(stopped).toMatchObject({ code: 0 });
    expect(stopped.stdout).toBe("✔ sleeper stopped · requested · exit 143 (SIGTERM)\n");
    const destroyed = await cli(["destroy", "sleeper", "ticker", "ghost"]);
    expect(destroyed.code).toBe(1);
    expect(destroyed.stdout).toBe("✔ sleeper destroyed\n✔ ticker destroyed\n");
    expect(destroyed.stderr).toBe('error: No workload "ghost" [WORKLOAD_NOT_FOUND]\n');
  });

  it("follows a workload's output with logs -f until it ends", async () => {
    await cli([
      "run",
      "-d",
      "--name",
      "slowprint",
      "--",
      "sh",
      "-c",
      "for i in 1 2 3; do echo line $i; sleep 0.2; done",
    ]);
    const logs = await cli(["logs", "-f", "slowprint"]);
    expect(logs).toMatchObject({ code: 0, stdout: "line 1\nline 2\nline 3\n" });
    await cli(["destroy", "slowprint"]);
  });

  it("shows transitions live: human-readable by default, JSON lines with --json", async () => {
    // --since 0 replays what happened before the stream was open, so no race with the run below.
    const human = start(["events", "--since", "0", "--workload", "watched"]);
    const machine = start(["events", "--json", "--since", "0", "--workload", "watched"]);
    await cli(["run", "--name", "watched", "-q", "--", "true"]);
    await machine.seen(/"state":"destroyed"/);
    await human.seen(/watched\s+stopped\s+→ destroyed/);
    human.child.kill("SIGINT");
    machine.child.kill("SIGINT");
    const [h, m] = await Promise.all([human.wait, machine.wait]);
    expect([h.code, m.code]).toEqual([0, 0]);
    const events = m.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as TransitionEvent);
    expect(events.map((e) => e.state)).toEqual(["starting", "running", "stopped", "destroyed"]);
    expect(events.at(2)).toMatchObject({ stopReason: "completed", exitCode: 0 });
    expect(h.stdout).toMatch(/#\d+\s+watched\s+running\s+→ stopped\s+completed\s+exit 0/);
    // In columns: every arrow under the one above.
    expect(
      new Set(
        h.stdout
          .trim()
          .split("\n")
          .map((line) => line.indexOf("→")),
      ).size,
    ).toBe(1);
  });

  it("says how to start a server when none answers, and run says nothing started", async () => {
    const nobody = `unix:${join(dir, "nobody.sock")}`;
    const [ls, run] = await Promise.all([
      cli(["ls", "--address", nobody]),
      cli(["run", "--name", "never", "--", "true"], { RUNTIME_KERNEL_ADDRESS: nobody }),
    ]);
    const unreachable = `error: cannot reach a runtime-kernel server at ${nobody}\n  start one with \`runtime-kernel serve\`, or pass --address\n`;
    expect(ls).toMatchObject({ code: 1, stderr: unreachable });
    expect(run).toMatchObject({ code: 125, stdout: "", stderr: unreachable });
  });

  it("reports an unknown workload in one voice, whichever command met it", async () => {
    const results = await Promise.all(["stop", "destroy", "logs", "get"].map((c) => cli([c, "nosuch"])));
    for (const result of results) {
      expect(result).toMatchObject({
        code: 1,
        stdout: "",
        stderr: 'error: No workload "nosuch" [WORKLOAD_NOT_FOUND]\n',
      });
    }
  });

  it("answers to ps and rm as to ls and destroy", async () => {
    await cli(["run", "-d", "--name", "aliased", "--", "sleep", "30"]);
    const [ps, ls] = await Promise.all([cli(["ps", "-q"]), cli(["ls", "-q"])]);
    expect(ps).toMatchObject({ code: 0, stdout: ls.stdout });
    expect(ps.stdout).toContain("aliased\n");
    expect(await cli(["rm", "--grace", "0", "aliased"])).toMatchObject({
      code: 0,
      stdout: "✔ aliased destroyed\n",
    });
  });
});

describe("help", () => {
  it("has --help for every command, and a list of commands", async () => {
    const commands = ["serve", "run", "ls", "get", "logs", "events", "stop", "destroy"];
    const results = await Promise.all([cli(["--help"]), ...commands.map((c) => cli([c, "--help"]))]);
    const [global, ...each] = results;
    expect(global!.code).toBe(0);
    for (const c of commands) expect(global!.stdout).toMatch(new RegExp(`^  ${c}(, \\w+)?\\s+\\S`, "m"));
    expect(global!.stdout).toMatch(/^ {2}ls, ps\s+list workloads$/m);
    expect(global!.stdout).toMatch(/^ {2}destroy, rm\s+stop \(if live\) and reclaim workloads$/m);
    each.forEach((result, i) => {
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`Usage: runtime-kernel ${commands[i]}`);
      expect(result.stdout).toContain("-h, --help");
    });
    expect(each[1]!.stdout).toContain("until destroyed or reaped by the server");
    expect(each[6]!.stdout).toContain("or\nuntil the server reaps them");
  });

  it("prints its version for --version, -v and -V", async () => {
    const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
    for (const flag of ["--version", "-v", "-V"]) {
      expect(await cli([flag])).toMatchObject({ code: 0, stdout: `${version}\n` });
    }
  });

  it("runs through the package's bin launcher, as `npx runtime-kernel` does", async () => {
    const launcher = await new Promise<Result>((done) => {
      const child = spawn(process.execPath, [join(ROOT, "bin/runtime-kernel.js"), "--version"], {
        cwd: dir,
        env,
      });
      let stdout = "";
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk;
      });
      child.on("close", (code, signal) => done({ code, signal, stdout, stderr: "" }));
    });
    expect(launcher.code).toBe(0);
    expect(launcher.stdout.trim()).toBe(JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version);
  });

  it("suggests a command or an option for a typo and exits 2", async () => {
    const [command, option] = await Promise.all([
      cli(["sotp", "x"]),
      cli(["run", "--gracee", "5s", "--", "true"]),
    ]);
    expect(command).toMatchObject({
      code: 2,
      stderr: 'error: unknown command "sotp"; did you mean "stop"?\n  see runtime-kernel --help\n',
    });
    expect(option).toMatchObject({
      code: 2,
      stderr: "error: Unknown option '--gracee'; did you mean --grace?\n  see runtime-kernel run --help\n",
    });
  });
});

describe("stopping serve", () => {
  it("stops its workloads on Ctrl-C, then exits 0", async () => {
    await cli(["run", "-d", "--name", "left-running", "--", "sleep", "60"]);
    serve.kill("SIGINT");
    const code = await new Promise<number | null>((r) => serve.once("close", r));
    expect(code).toBe(0);
    expect(serveStderr).toContain("SIGINT: shutting down; stopping 1 workload(s)");
    expect(serveStderr).toMatch(/left-running\s+stopping\s+→ stopped\s+shutdown/);
    expect(serveStderr).toMatch(/left-running\s+stopped\s+→ destroyed/);
  });
});
