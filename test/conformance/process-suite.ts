/**
 * The Backend conformance suite against ProcessBackend, plain or sandboxed: real process
 * groups under the state dir's supervisor. What a run still holds is read from the machine
 * itself: its processes (by the suite's CONFORMANCE_RUN_ID variable, which every child
 * inherits, the sandbox's own processes too), its log files, and the supervisor's record of
 * it (through a fresh instance's `discover`).
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Runnable } from "../../src/backends/backend.js";
import {
  ProcessBackend,
  type ProcessBackendOptions,
  type ProcessHandle,
} from "../../src/backends/process/index.js";
import { logPathsOf } from "../../src/backends/process/launch-spec.js";
import { processesWithEnv } from "../../src/testing/index.js";
import { describeBackendConformance } from "../../src/testing/vitest.js";
import { sigtermIn } from "../setup/processes.js";

const ignoresTerminate = { command: ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"] };
const spawnsChild = { command: ["sh", "-c", "sleep 600 & wait"] };

async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!(await condition()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
}

const processesOf = (runId: string) => processesWithEnv("CONFORMANCE_RUN_ID", runId);

/** Holds `ProcessBackend(options)` to the whole suite, under `name`. */
export function describeProcessConformance(name: string, options: Partial<ProcessBackendOptions> = {}): void {
  const stateDir = mkdtempSync(join(tmpdir(), "rk-conf-process-"));
  const kernelId = `conformance-process-${randomUUID().slice(0, 8)}`;
  const open = () => new ProcessBackend({ ...options, stateDir, supervisorIdleMs: 5_000 });
  const inspector = open();

  describeBackendConformance(name, open, {
    longRunning: { command: ["sleep", "600"] },
    exitWith: (code) => ({ command: ["sh", "-c", `exit ${code}`] }),
    ignoresTerminate,
    spawnsChild,
    cannotStart: { command: ["/nonexistent/rk-conformance-program"] },
    prints: (lines) => ({
      command: ["sh", "-c", `${lines.map((l) => `echo ${l}; `).join("")}exec sleep 600`],
    }),
    // A process can only ignore a signal once it has run its own code (exec resets
    // dispositions); measured here, a SIGTERM sent at once beats `sh`'s trap in about a third
    // of starts. So the suite waits until the workload's own program runs (in a sandbox, past
    // bubblewrap's setup), has installed its trap, or has started its child.
    ready: async (handle, runnable: Runnable) => {
      const own = (runnable.command ?? []).join(" ");
      await until(async () => {
        const processes = await processesOf((handle as ProcessHandle).runId);
        const main = processes.find((p) => p.command === own || p.command === "sleep 600");
        if (!main) return false;
        if (runnable === ignoresTerminate) return sigtermIn(main.pid, "SigIgn");
        return runnable !== spawnsChild || processes.some((p) => p.command === "sleep 600");
      });
    },
    leftovers: async (handle) => {
      const logs = logPathsOf(join(stateDir, "logs"), handle.workloadId, handle.runId);
      const files = [logs.stdout, logs.stderr].flatMap((f) => [f, `${f}.1`]).filter((f) => existsSync(f));
      const recorded = (await inspector.discover({ kernelId })).some((f) => f.handle.runId === handle.runId);
      return {
        running: (await processesOf(handle.runId)).map((p) => `pid ${p.pid}: ${p.command}`),
        stored: [...files, ...(recorded ? ["the supervisor's record of the run"] : [])],
      };
    },
    // The supervisor sees every exit of its children, so a workload only vanishes from the
    // record when the supervisor itself dies while the workload ends: kill both.
    vanish: async (handle) => {
      const { pid } = await inspector.supervisorStats();
      process.kill(pid, "SIGKILL");
      process.kill(-(handle as ProcessHandle).pid, "SIGKILL");
    },
    request: { kernelId },
    timeoutMs: 10_000,
    teardown: async () => {
      await inspector.stopSupervisor({ force: true });
      await inspector.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  });
}
