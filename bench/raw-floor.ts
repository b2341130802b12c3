/**
 * The raw floor the process benches measure the kernel beside: plain `child_process.spawn`,
 * nothing else, so every bench compares against the same thing.
 * @module
 */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { probeSandbox, sandboxArgv } from "../src/backends/process/sandbox.js";

/**
 * How the supervisor spawns a workload, for argv spawned without it (raw bubblewrap): the
 * leader of its own process group, stdio not the bench's, a minimal environment.
 */
export const AS_THE_SUPERVISOR_SPAWNS: SpawnOptions = {
  cwd: "/",
  env: { PATH: process.env.PATH, HOME: "/tmp", TMPDIR: "/tmp" },
  detached: true,
};

/** The argv the sandboxed ProcessBackend spawns for a `sleep 60` (bubblewrap, default sandbox): raw bubblewrap's floor. */
export function sandboxedSleepArgv(): string[] {
  const request = {
    kernelId: "bench",
    workloadId: "floor",
    runId: "floor",
    profile: "sleeper",
    runnable: { command: ["sleep", "60"] },
    env: {},
    labels: {},
  };
  return sandboxArgv(probeSandbox({}), { request, command: ["sleep", "60"], cwd: "/tmp" });
}

/** Spawns `argv` `n` times at once; resolves with the children once each has spawned. */
export function spawnAll(argv: string[], n: number, options: SpawnOptions = {}): Promise<ChildProcess[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ChildProcess>((resolve, reject) => {
          const child = spawn(argv[0] as string, argv.slice(1), { stdio: "ignore", ...options });
          child.once("spawn", () => resolve(child)).once("error", reject);
        }),
    ),
  );
}

/** Spawns `n` `sleep 60`s at once; resolves with them once each has spawned. */
export function spawnSleepers(n: number, options: { detached?: boolean } = {}): Promise<ChildProcess[]> {
  return spawnAll(["sleep", "60"], n, { detached: options.detached ?? false });
}
