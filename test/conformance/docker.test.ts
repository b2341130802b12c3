/**
 * The Backend conformance suite against DockerBackend on the real test engine
 * (test/setup/docker.global.ts starts it; the suite fails if it cannot). What a run still
 * holds is asked of the engine: its containers, found by the run-id label.
 */

import { LABELS } from "../../src/backends/backend.js";
import type { Backend, Runnable, WorkloadHandle } from "../../src/index.js";
import { describeBackendConformance } from "../../src/testing/vitest.js";
import { backendFor, engine, testImage } from "../integration/docker/support.js";

let backend: Backend | undefined;
const shell = (script: string): Runnable => ({ image: testImage(), command: ["sh", "-c", script] });

describeBackendConformance(
  "DockerBackend",
  () => {
    const created = backendFor();
    backend ??= created;
    return created;
  },
  {
    // docker-init is PID 1 (the default): SIGTERM reaches sleep, which dies of it.
    longRunning: { image: testImage(), command: ["sleep", "600"] },
    exitWith: (code) => shell(`exit ${code}`),
    ignoresTerminate: shell("trap '' TERM; echo ready; while :; do sleep 1; done"),
    spawnsChild: shell("sleep 600 & echo ready; wait"),
    // Not a missing command: docker-init would start, then exit 127 (docs/docker-backend.md).
    cannotStart: { image: "runtime-kernel/absent:conformance", command: ["true"] },
    prints: (lines) => shell(`${lines.map((l) => `echo ${l}; `).join("")}exec sleep 600`),
    // A SIGTERM that arrives before the shell installed its trap (or started its child) finds
    // the wrong process: wait for the line it prints once it has.
    ready: async (handle) => {
      const logs = backend?.logs?.(handle, { follow: true, signal: AbortSignal.timeout(20_000) });
      for await (const entry of logs ?? []) if (entry.line === "ready") return;
    },
    leftovers: async (handle: WorkloadHandle) => {
      const containers = await engine().listContainers({
        all: true,
        filters: { label: [`${LABELS.runId}=${handle.runId}`] },
      });
      const name = (c: (typeof containers)[number]) => `container ${c.Names?.[0] ?? c.Id} (${c.State})`;
      return {
        running: containers.filter((c) => c.State === "running").map(name),
        stored: containers.map(name),
      };
    },
    vanish: async (handle) => {
      await engine().getContainer(String(handle.containerId)).remove({ force: true, v: true });
    },
    timeoutMs: 30_000,
  },
);
