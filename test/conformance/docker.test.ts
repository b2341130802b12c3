/**
 * The Backend conformance suite against DockerBackend on the real test engine
 * (test/setup/docker.global.ts starts it; the suite fails if it cannot).
 */
import { describeBackendConformance } from "../../src/testing/index.js";
import { backendFor, engine, testImage } from "../integration/docker/support.js";

describeBackendConformance("DockerBackend", () => backendFor(), {
  // docker-init is PID 1 (the default): SIGTERM reaches sleep, which dies of it.
  longRunning: { image: testImage(), command: ["sleep", "600"] },
  exitWith: (code) => ({ image: testImage(), command: ["sh", "-c", `exit ${code}`] }),
  ignoresTerminate: { image: testImage(), command: ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"] },
  vanish: async (handle) => {
    await engine().getContainer(String(handle.containerId)).remove({ force: true, v: true });
  },
  timeoutMs: 30_000,
});
