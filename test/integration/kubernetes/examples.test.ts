/**
 * examples/kubernetes/kubernetes.ts keeps running against a real API server and kubelet as
 * its header shows (`npx tsx`, the package imported by its name), and keeps saying what it says.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { LABELS } from "../../../src/backends/backend.js";
import { cluster, core, namespace, testImage } from "./support.js";

describe("examples/kubernetes/kubernetes.ts on the test cluster", () => {
  it("runs an agent Pod with its Secret, adopts it from a second kernel, stops it and leaves nothing", async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "examples/kubernetes/kubernetes.ts"],
      {
        timeout: 180_000,
        env: {
          ...process.env,
          KUBECONFIG: cluster().kubeconfig,
          POD_NAMESPACE: namespace(),
          RK_EXAMPLE_IMAGE: testImage(),
          RK_EXAMPLE_PULL: "Never",
        },
      },
    );
    expect(stdout).toMatch(/running: agent-1 \S+/);
    expect(stdout).toContain("adopted: [ 'agent-1' ]");
    expect(stdout).toContain("stopped: requested exit 0");
    expect(stdout).not.toContain("example-token-123");
    const selector = `${LABELS.kernelId}=example-k8s`;
    const pods = await core().listNamespacedPod({ namespace: namespace(), labelSelector: selector });
    const secrets = await core().listNamespacedSecret({ namespace: namespace(), labelSelector: selector });
    expect([...pods.items, ...secrets.items].map((o) => o.metadata?.name)).toEqual([]);
  });
});
