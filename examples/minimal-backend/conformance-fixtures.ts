/**
 * What the conformance suite needs to know about MinimalBackend's substrate: runnables that
 * behave in known ways, and how to look at what a run still holds from outside the backend.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Runnable } from "runtime-kernel";
import { processesWithEnv } from "runtime-kernel/testing";
import type { ConformanceFixtures } from "runtime-kernel/testing/vitest";
import type { MinimalHandle } from "./minimal-backend.js";

/** The fixtures for a MinimalBackend over `dir`. */
export function minimalFixtures(dir: string): ConformanceFixtures {
  const ignoresTerminate: Runnable = { command: ["sh", "-c", "trap '' TERM; echo ready; exec sleep 600"] };
  const spawnsChild: Runnable = { command: ["sh", "-c", "sleep 600 & echo ready; wait"] };
  return {
    longRunning: { command: ["sleep", "600"] },
    exitWith: (code) => ({ command: ["sh", "-c", `exit ${code}`] }),
    ignoresTerminate,
    spawnsChild,
    cannotStart: { command: ["/nonexistent/program"] },
    prints: (lines) => ({ command: ["sh", "-c", `printf '%s\\n' "$@"; exec sleep 600`, "sh", ...lines] }),
    // Both print "ready" once their trap is in place, or their child started: a SIGTERM sent
    // before that would kill the shell, or find no child to kill.
    ready: async (handle) => {
      const out = join(dir, `${handle.runId}.out`);
      while (!(existsSync(out) && readFileSync(out, "utf8").includes("ready\n"))) await sleep(10);
    },
    leftovers: async (handle) => ({
      // Every process of a run inherits the CONFORMANCE_RUN_ID the suite sets.
      running: (await processesWithEnv("CONFORMANCE_RUN_ID", handle.runId)).map(
        (p) => `pid ${p.pid}: ${p.command}`,
      ),
      stored: readdirSync(dir).filter((file) => file.startsWith(`${handle.runId}.`)),
    }),
    // Behind the backend's back: its record goes, then its processes.
    vanish: async (handle) => {
      rmSync(join(dir, `${handle.runId}.run`));
      process.kill(-(handle as MinimalHandle).pid, "SIGKILL");
    },
    timeoutMs: 5_000,
  };
}
