/**
 * The Backend conformance suite against DockerBackend on the real test engine
 * (test/setup/docker.global.ts starts it; the suite fails if it cannot).
 */
import type { Backend } from "../../src/index.js";
import { describeBackendConformance } from "../../src/testing/vitest.js";
import { backendFor, engine, testImage } from "../integration/docker/support.js";

let backend: Backend;

describeBackendConformance("DockerBackend", () => (backend = backendFor()), {
  // docker-init is PID 1 (the default): SIGTERM reaches sleep, which dies of it.
  longRunning: { image: testImage(), command: ["sleep", "600"] },
  exitWith: (code) => ({ image: testImage(), command: ["sh", "-c", `exit ${code}`] }),
  ignoresTerminate: {
    image: testImage(),
    command: ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"],
  },
  // A SIGTERM that arrives before the shell installed its trap kills it: wait for the
  // line it prints once the trap is in place.
  ready: async (handle) => {
    const logs = backend.logs?.(handle, { follow: true, signal: AbortSignal.timeout(20_000) });
    for await (const entry of logs ?? []) if (entry.line === "ready") return;
  },
  vanish: async (handle) => {
    await engine().getContainer(String(handle.containerId)).remove({ force: true, v: true });
  },
  timeoutMs: 30_000,
});
