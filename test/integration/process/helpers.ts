/**
 * What the process integration tests share: a private state dir per test file, a look at
 * /proc for what is really running, and a teardown that proves nothing is left behind.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProcessBackend, type ProcessBackendOptions } from "../../../src/backends/process/index.js";
import type { RuntimeKernel, TransitionEvent } from "../../../src/index.js";

/** A fresh state dir under the system temp dir (short, so the socket path fits). */
export function tempStateDir(prefix = "rk-proc-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A backend on a fresh state dir, with a short supervisor idle time. */
export function newBackend(options: Partial<ProcessBackendOptions> = {}): ProcessBackend {
  return new ProcessBackend({
    supervisorIdleMs: 5_000,
    ...options,
    stateDir: options.stateDir ?? tempStateDir(),
  });
}

/** Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]. */
function statOf(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "latin1");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** Pids of the live (non-zombie) processes whose process group is one of `pgids`. */
export function livingInGroups(pgids: Iterable<number>): number[] {
  const wanted = new Set(pgids);
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const stat = statOf(pid);
    if (stat && wanted.has(Number(stat[2])) && stat[0] !== "Z" && stat[0] !== "X") out.push(pid);
  }
  return out;
}

/** Whether a process with this pid exists and is not a zombie. */
export function isRunning(pid: number): boolean {
  const stat = statOf(pid);
  return stat !== undefined && stat[0] !== "Z" && stat[0] !== "X";
}

/** Waits until `check()` holds, polling (for the substrate's own pace: processes dying). */
export async function eventually(
  check: () => boolean,
  timeoutMs = 10_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Records every transition of a kernel. */
export function recordEvents(kernel: RuntimeKernel): TransitionEvent[] {
  const events: TransitionEvent[] = [];
  kernel.on("transition", (event) => events.push(event));
  return events;
}

/** The states one workload went through, in order. */
export function statesOf(events: TransitionEvent[], workloadId: string): string[] {
  return events.filter((e) => e.workloadId === workloadId).map((e) => e.state);
}

/**
 * Stops the backend's supervisor (killing anything still running), removes the state dir,
 * and checks that no supervisor process serves it any more.
 */
export async function teardown(backend: ProcessBackend): Promise<void> {
  let pid: number | undefined;
  try {
    pid = (await backend.supervisorStats()).pid;
    await backend.stopSupervisor({ force: true });
  } finally {
    rmSync(backend.stateDir, { recursive: true, force: true });
  }
  if (pid !== undefined)
    await eventually(() => !isRunning(pid as number), 5_000, `supervisor ${pid} to exit`);
}
