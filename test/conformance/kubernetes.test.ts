/**
 * The Backend conformance suite against KubernetesBackend on the node tier: real Pods on a real
 * kubelet (test/setup/kubernetes.global.ts starts the cluster; the suite fails if it cannot).
 * What a run still holds is asked of the API server (its Pods and Secrets, by the run-id label)
 * and of the node's Docker engine (the containers the kubelet runs for it).
 */
import Dockerode from "dockerode";
import { type ExitStatus, LABELS, type Runnable } from "../../src/backends/backend.js";
import type { KubernetesBackend, KubernetesHandle } from "../../src/backends/kubernetes/index.js";
import { describeBackendConformance } from "../../src/testing/vitest.js";
import { backendFor, core, namespace, nodeDockerHost, testImage } from "../integration/kubernetes/support.js";

let backend: KubernetesBackend | undefined;
const shell = (script: string): Runnable => ({ image: testImage(), command: ["sh", "-c", script] });
const node = () => new Dockerode({ socketPath: nodeDockerHost().replace(/^unix:\/\//, "") });

describeBackendConformance(
  "KubernetesBackend",
  () => {
    const created = backendFor({
      profiles: { conformance: { imagePullPolicy: "Never" } },
      startTimeoutMs: 120_000,
    });
    backend ??= created;
    return created;
  },
  {
    // PID 1 has no default signal handlers: the shell traps TERM and exits, as an agent would.
    longRunning: shell("trap 'exit 143' TERM; sleep 600 & wait"),
    exitWith: (code) => shell(`exit ${code}`),
    ignoresTerminate: shell("trap '' TERM; echo ready; while :; do sleep 1; done"),
    spawnsChild: shell("trap 'exit 143' TERM; sleep 600 & echo ready; wait"),
    // Not on the node, and never pulled: ErrImageNeverPull, which the backend fails at once.
    cannotStart: { image: "runtime-kernel/absent:conformance", command: ["true"] },
    // More CPU than the node has: the Pod (and its Secret) exist, and it stays Pending.
    slowStart: { runnable: shell("true"), resources: { cpu: 1_000 } },
    prints: (lines) =>
      shell(`${lines.map((l) => `echo ${l}; `).join("")}trap 'exit 143' TERM; sleep 600 & wait`),
    // Wait for the line it prints once its trap is in place, or its child started.
    ready: async (handle) => {
      const logs = backend?.logs(handle as KubernetesHandle, {
        follow: true,
        signal: AbortSignal.timeout(30_000),
      });
      for await (const entry of logs ?? []) if (entry.line === "ready") return;
    },
    leftovers: async (handle) => {
      const labelSelector = `${LABELS.runId}=${handle.runId}`;
      const [pods, secrets, containers] = await Promise.all([
        core().listNamespacedPod({ namespace: namespace(), labelSelector }),
        core().listNamespacedSecret({ namespace: namespace(), labelSelector }),
        // The kubelet copies a Pod's labels onto its containers (and onto its sandbox's).
        node().listContainers({ filters: { label: [labelSelector] } }),
      ]);
      return {
        running: containers.map((c) => `node container ${c.Names?.[0] ?? c.Id} (${c.State})`),
        stored: [
          ...pods.items.map((p) => `Pod ${p.metadata?.name} (${p.status?.phase})`),
          ...secrets.items.map((s) => `Secret ${s.metadata?.name}`),
        ],
      };
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
