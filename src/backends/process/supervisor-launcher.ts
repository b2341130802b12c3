/**
 * Launches a process supervisor for a state dir: writes its program there and starts it,
 * detached, then reads the one line it prints once ready. It owns that launch only; it must
 * not talk to the supervisor (the client, `supervisor-client.ts`, does).
 * @module
 */
import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { BackendUnavailableError } from "../../errors.js";
import type { ReadyLine } from "./protocol.js";
import { type SupervisorConfig, supervisorSource } from "./supervisor.js";

/** What a launch needs (a part of the client's options). */
export interface LaunchOptions {
  config: SupervisorConfig;
  /** Where to write the supervisor's program. */
  scriptPath: string;
  /** The Node binary that runs the supervisor. */
  nodePath: string;
  /** How long a launch may take before it is an error. */
  launchTimeoutMs: number;
}

/**
 * Starts a supervisor through execa (lazily imported: it is only needed here), detached
 * into its own session so it outlives this process, with an empty environment (the host's
 * NODE_OPTIONS or loaders must not leak into it). It prints one line when ready. The caller
 * checks first that file descriptors are left for it (see `ensureFileDescriptors`).
 */
export async function launchSupervisor(options: LaunchOptions): Promise<void> {
  const { config, scriptPath, nodePath, launchTimeoutMs } = options;
  writeScript(scriptPath, supervisorSource(config));
  const { execa } = await import("execa");
  const subprocess = execa(nodePath, [scriptPath], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "ignore",
    detached: true,
    cleanup: false,
    buffer: false,
    reject: false,
    extendEnv: false,
    env: {},
    cwd: config.stateDir,
  });
  const line = await new Promise<ReadyLine | undefined>((resolve) => {
    let text = "";
    const timer = setTimeout(
      () => resolve({ error: `no answer within ${launchTimeoutMs} ms` }),
      launchTimeoutMs,
    );
    subprocess.stdout?.setEncoding("utf8");
    subprocess.stdout?.on("data", (chunk: string) => {
      text += chunk;
      const newline = text.indexOf("\n");
      if (newline < 0) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(text.slice(0, newline)) as ReadyLine);
      } catch {
        resolve({ error: `unexpected output: ${text.slice(0, 200)}` });
      }
    });
    subprocess.stdout?.on("end", () => {
      clearTimeout(timer);
      resolve(undefined);
    });
  });
  subprocess.stdout?.destroy();
  subprocess.unref();
  // The supervisor outlives us; its eventual exit is no error of ours.
  subprocess.catch(() => {});
  if (line === undefined) {
    const result = await Promise.race([subprocess, new Promise((r) => setTimeout(r, 1_000))]);
    const exitCode = (result as { exitCode?: number } | undefined)?.exitCode;
    throw new BackendUnavailableError(
      `The process supervisor exited during start-up (exit code ${exitCode ?? "unknown"}); see ${config.stateDir}/supervisor.log`,
    );
  }
  if ("error" in line) {
    throw new BackendUnavailableError(`The process supervisor could not start: ${line.error}`);
  }
  // {ready: false, locked: true}: another supervisor holds this state dir; connect to it.
}

/**
 * Writes the supervisor's program, unless it is already there as it should be (so that a
 * supervisor can be launched on a full disk), through a temporary file that never stays.
 */
function writeScript(path: string, source: string): void {
  try {
    if (readFileSync(path, "utf8") === source) return;
  } catch {}
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, source, { mode: 0o600 });
    renameSync(tmp, path);
  } catch (error) {
    try {
      unlinkSync(tmp);
    } catch {}
    throw error;
  }
}
