/**
 * The Backend conformance suite against KubernetesBackend on the node tier: real Pods on a real
 * kubelet (test/setup/kubernetes.global.ts starts the cluster; the suite fails if it cannot).
 */
import type { ExitStatus } from "../../src/backends/backend.js";
import type { KubernetesBackend, KubernetesHandle } from "../../src/backends/kubernetes/index.js";
import { describeBackendConformance } from "../../src/testing/vitest.js";
import { backendFor, core, namespace, testImage } from "../integration/kubernetes/support.js";

let backend: KubernetesBackend | undefined;

describeBackendConformance(
  "KubernetesBackend",
  () => {
    backend = backendFor({ profiles: { conformance: { imagePullPolicy: "Never" } }, startTimeoutMs: 60_000 });
    return backend;
  },
  {
    // PID 1 has no default signal handlers: the shell traps TERM and exits, as an agent would.
    longRunning: { image: testImage(), command: ["sh", "-c", "trap 'exit 143' TERM; sleep 600 & wait"] },
    exitWith: (code) => ({ image: testImage(), command: ["sh", "-c", `exit ${code}`] }),
    ignoresTerminate: {
      image: testImage(),
      command: ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"],
    },
    // Wait for the line it prints once its trap is in place.
    ready: async (handle) => {
      const logs = backend?.logs(handle as KubernetesHandle, {
        follow: true,
        signal: AbortSignal.timeout(30_000),
      });
      for await (const entry of logs ?? []) if (entry.line === "ready") return;
    },
    vanish: async (handle) => {
      const h = handle as KubernetesHandle;
      // Deleted behind the backend's back; resolved once its shared watch has seen it go.
      const seen = new Promise<ExitStatus>((resolve) => backend?.watchExit(h, resolve));
      await core().deleteNamespacedPod({ name: h.pod, namespace: namespace(), gracePeriodSeconds: 0 });
      await seen;
    },
    timeoutMs: 60_000,
  },
);
