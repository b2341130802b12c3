/**
 * Hosted plugins in Pods: `kernelRuntimeProvider` over a kernel on the Kubernetes backend, on
 * the node tier (a real scheduler and kubelet). The same bundled TypeScript plugin as the local
 * and Docker tests runs in an image holding only Node; the session folder reaches the Pod as a
 * `subPath` of a `hostPath` workspace volume, and the host dials the plugin's unix socket in it.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubernetesBackend } from "../../../src/backends/kubernetes/index.js";
import {
  createPluginHost,
  GESTALT_PLUGIN_PROFILE,
  kernelRuntimeProvider,
  loadGestaltConfig,
  type PluginHost,
  type RuntimeProvider,
} from "../../../src/gestalt/index.js";
import { createRuntimeKernel, type RuntimeKernel } from "../../../src/index.js";
import {
  expectServesFromWorkspace,
  nodePluginImage,
  PLUGIN_IN_IMAGE,
} from "../../fixtures/gestalt/node-image.js";
import { backendFor, core, namespace, nodeDockerHost, testKernelId } from "./support.js";

const kernelId = testKernelId("gestalt");
let image: string;
let sessionRoot: string;
let backend: KubernetesBackend;
let kernel: RuntimeKernel;
let provider: RuntimeProvider;

beforeAll(async () => {
  image = await nodePluginImage(nodeDockerHost());
  sessionRoot = mkdtempSync(join(tmpdir(), "rk-gks-"));
  backend = backendFor({
    profiles: {
      [GESTALT_PLUGIN_PROFILE]: {
        imagePullPolicy: "Never",
        workspace: {
          volume: { hostPath: { path: sessionRoot, type: "Directory" } },
          mountPath: "/workspace",
        },
        // The session folders are the host user's (0700): the plugin runs as their owner.
        securityContext: { runAsNonRoot: false, runAsUser: 0 },
      },
    },
    startTimeoutMs: 60_000,
  });
  kernel = createRuntimeKernel({
    backend,
    kernelId,
    profiles: { [GESTALT_PLUGIN_PROFILE]: { runnable: {}, graceMs: 5_000 } },
  });
  provider = kernelRuntimeProvider(kernel, {
    name: "kubernetes",
    socket: { kind: "shared-folder", mountPath: "/workspace" },
    sessionRoot,
  });
}, 300_000);

afterAll(async () => {
  await kernel?.shutdown();
  rmSync(sessionRoot, { recursive: true, force: true });
});

function pluginHost(): PluginHost {
  return createPluginHost({
    config: loadGestaltConfig({
      runtime: { providers: { kubernetes: { driver: "kubernetes", default: true } } },
      plugins: {
        support: { ...PLUGIN_IN_IMAGE, execution: { mode: "hosted", runtime: { image } } },
      },
    }),
    drivers: { kubernetes: () => provider },
  });
}

/** This kernel's Pods that still exist. */
async function pods() {
  const list = await core().listNamespacedPod({
    namespace: namespace(),
    labelSelector: `runtime-kernel.dev/kernel-id=${kernelId}`,
  });
  return list.items;
}

describe("a hosted plugin in a Kubernetes Pod", () => {
  it("starts, is dialled back through the session folder on a hostPath volume, answers, and is deleted on stop", async () => {
    const h = pluginHost();
    try {
      const started = await h.startPlugin("support");
      expect(started.provider).toBe("kubernetes");
      await expectServesFromWorkspace(started, sessionRoot, "from a pod");

      const running = await pods();
      expect(running).toHaveLength(1);
      const mount = running[0]?.spec?.containers[0]?.volumeMounts?.find((m) => m.name === "workspace");
      expect(mount?.subPath).toMatch(/^gestalt-[^/]+$/);
      expect((await provider.getSession({ sessionId: started.sessionId })).state).toBe("running");

      await started.stop();
      expect(await pods()).toEqual([]);
      expect(readdirSync(sessionRoot)).toEqual([]);
      expect((await provider.getSession({ sessionId: started.sessionId })).state).toBe("stopped");
    } finally {
      await h.close();
    }
  });
});
