/**
 * The Kubernetes backend: an agent workload as a bare Pod, its credential in a per-run Secret,
 * its logs, a graceful stop, and a second kernel that adopts what the first left running.
 *
 * Against any cluster your kubeconfig (or in-cluster service account, see rbac.yaml) reaches;
 * or against the project's own test cluster:
 *   export $(bash test/setup/kubernetes.sh start-node | xargs)
 *   KUBECONFIG=$RK_K8S_KUBECONFIG RK_EXAMPLE_IMAGE=$RK_TEST_IMAGE RK_EXAMPLE_PULL=Never npx tsx examples/kubernetes/kubernetes.ts
 *   bash test/setup/kubernetes.sh stop
 */
import { createRuntimeKernel, type Profile } from "runtime-kernel";
import { KubernetesBackend, type KubernetesBackendOptions } from "runtime-kernel/kubernetes";

const image = process.env.RK_EXAMPLE_IMAGE ?? "busybox:1.36";
const pull = (process.env.RK_EXAMPLE_PULL ?? "IfNotPresent") as "Never" | "IfNotPresent";

// Pod settings per profile: namespace from POD_NAMESPACE or the kubeconfig's context.
const backendOptions: KubernetesBackendOptions = {
  profiles: { agent: { imagePullPolicy: pull } },
  startTimeoutMs: 60_000,
};
const profiles: Record<string, Profile> = {
  agent: {
    runnable: {
      image,
      command: [
        "sh",
        "-c",
        "echo agent up; [ -n \"$API_TOKEN\" ] && echo token present; trap 'exit 0' TERM; sleep 3600 & wait",
      ],
    },
    resources: { cpu: 0.1, memoryMb: 64 },
    graceMs: 10_000,
  },
};
// A broker stands in for your secret store: its values reach the Pod only through its Secret.
const credentials = { credentials: () => ({ API_TOKEN: "example-token-123" }) };

const kernel = createRuntimeKernel({
  kernelId: "example-k8s",
  backend: new KubernetesBackend(backendOptions),
  profiles,
  credentials,
});
const status = await kernel.create({ workloadId: "agent-1", profile: "agent", owner: "alice" });
console.log("running:", status.workloadId, status.runId);

for await (const entry of kernel.logs("agent-1", { tail: 10 })) console.log("log:", entry.line);

// Leave it running and go away, as a crashed or redeployed host would.
await kernel.shutdown({ leaveRunning: true });

const again = createRuntimeKernel({
  kernelId: "example-k8s",
  backend: new KubernetesBackend(backendOptions),
  profiles,
  credentials,
});
const report = await again.recover();
console.log(
  "adopted:",
  report.adopted.map((s) => s.workloadId),
);

const stopped = await again.stop("agent-1");
console.log("stopped:", stopped.stopReason, "exit", stopped.exitCode);
await again.destroy("agent-1"); // resolves once the Pod and its Secret are gone
await again.shutdown();
