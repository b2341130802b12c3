/**
 * Hosted plugins in Pods: `kernelRuntimeProvider` over a kernel on the Kubernetes backend, on
 * the node tier (a real scheduler and kubelet), directly and through `runtime-kernel
 * gestalt-provider` launched by the host as gestaltd would. The same bundled TypeScript
 * plugin as the local and Docker tests runs in an image holding only Node, watching its
 * parent as upstream's SDK plugins do; the session folder reaches the Pod as a `subPath` of
 * a `hostPath` workspace volume, and the host dials the plugin's unix socket in it.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
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
import { makeRepository } from "../../fixtures/gestalt/git-repo.js";
import {
  expectServesFromWorkspace,
  nodePluginImage,
  PLUGIN_IN_IMAGE,
} from "../../fixtures/gestalt/node-image.js";
import { PROVIDER_COMMAND } from "../gestalt/gestaltd.js";
import { call, EchoClient, eventuallyAsync, pluginEnv } from "../gestalt/helpers.js";
import { backendFor, cluster, core, namespace, nodeDockerHost, testKernelId } from "./support.js";

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

/** A kernel's Pods that still exist. */
async function pods(id = kernelId) {
  const list = await core().listNamespacedPod({
    namespace: namespace(),
    labelSelector: `runtime-kernel.dev/kernel-id=${id}`,
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
      // The plugin is PID 1 of its container: its parent is outside its PID namespace, so
      // GESTALT_PLUGIN_PARENT_PID is left unset and an upstream SDK plugin watches nothing.
      const { env, ppid } = await pluginEnv(started.client(EchoClient));
      expect(ppid).toBe(0);
      expect(env.GESTALT_PLUGIN_PARENT_PID).toBeUndefined();

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

describe("runtime-kernel gestalt-provider on the Kubernetes backend", () => {
  it("hosts the parent-watching plugin in a Pod, which stays up and sees its git workspace", async () => {
    const providerKernel = testKernelId("gestalt-provider");
    const root = mkdtempSync(join(tmpdir(), "rk-gkp-"));
    const sessions = join(root, "sessions");
    mkdirSync(sessions);
    mkdirSync(join(root, "repo"));
    const repo = makeRepository(join(root, "repo"));
    const host = createPluginHost({
      config: loadGestaltConfig({
        runtime: {
          providers: {
            kubernetes: {
              source: PROVIDER_COMMAND,
              default: true,
              config: {
                backend: {
                  type: "kubernetes",
                  options: {
                    kubeConfig: cluster().kubeconfig,
                    namespace: namespace(),
                    startTimeoutMs: 60_000,
                    profiles: {
                      [GESTALT_PLUGIN_PROFILE]: {
                        imagePullPolicy: "Never",
                        workspace: {
                          volume: { hostPath: { path: sessions, type: "Directory" } },
                          mountPath: "/workspace",
                        },
                        securityContext: { runAsNonRoot: false, runAsUser: 0 },
                      },
                    },
                  },
                },
                kernelId: providerKernel,
                sessionRoot: sessions,
              },
            },
          },
        },
        plugins: { support: { ...PLUGIN_IN_IMAGE, execution: { mode: "hosted", runtime: { image } } } },
      }),
      providerOutput: () => {},
    });
    try {
      const started = await host.startPlugin("support");
      const echo = started.client(EchoClient);
      const { env, cwd } = await pluginEnv(echo);
      expect(env.GESTALT_PLUGIN_SOCKET).toBe("/workspace/plugin.sock");
      expect(env.GESTALT_PLUGIN_PARENT_PID).toBeUndefined();
      expect(env.GESTALT_RUNTIME_SESSION_ID).toBe(started.sessionId);
      expect(cwd).toBe("/workspace");
      expect(await pods(providerKernel)).toHaveLength(1);

      const provider = await host.provider("kubernetes");
      const prepared = await provider.prepareWorkspace!({
        sessionId: started.sessionId,
        agentSessionId: "agent-1",
        workspace: { checkouts: [{ url: repo.url, ref: "feature", path: "repo" }], cwd: "repo/sub" },
      });
      expect(prepared.cwd).toBe("/workspace/workspaces/agent-1/repo/sub");
      expect(await call(echo.read, echo, { path: "/workspace/workspaces/agent-1/repo/feature.txt" })).toEqual(
        {
          text: "feature\n",
        },
      );
      expect(await call(echo.say, echo, { text: "from a pod" })).toMatchObject({ text: "from a pod" });
    } finally {
      await host.close();
      rmSync(root, { recursive: true, force: true });
    }
    // The provider deleted its Pod on the way out; the kubelet finishes the deletion.
    let left = 1;
    await eventuallyAsync(
      async () => (left = (await pods(providerKernel)).length) === 0,
      "the Pod to be gone",
      60_000,
    );
    expect(left).toBe(0);
  });
});
