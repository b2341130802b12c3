/**
 * Hosted plugins in containers: `kernelRuntimeProvider` over a kernel on the Docker backend,
 * against the real test engine (test/setup/docker-engine.sh). The same TypeScript plugin as
 * the local tests, bundled, runs in an image holding only Node; its unix socket reaches the
 * host through the session folder, bind-mounted at /workspace.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Dockerode from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerBackend } from "../../../src/backends/docker/index.js";
import {
  createPluginHost,
  GESTALT_PLUGIN_PROFILE,
  HostedPluginError,
  kernelRuntimeProvider,
  loadGestaltConfig,
  type PluginHost,
  ProfileRefusedError,
  type RuntimeProvider,
} from "../../../src/gestalt/index.js";
import { createRuntimeKernel, type RuntimeKernel } from "../../../src/index.js";
import { expectServesFromWorkspace, nodePluginImage } from "../../fixtures/gestalt/node-image.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** The engine's address: from the global setup's env, else from the engine script (which fails loudly when it is down). */
function dockerHost(): string {
  if (process.env.DOCKER_HOST) return process.env.DOCKER_HOST;
  const env = execFileSync("bash", [join(root, "test/setup/docker-engine.sh"), "env"], { encoding: "utf8" });
  const host = /^DOCKER_HOST=(.+)$/m.exec(env)?.[1];
  if (!host) throw new Error("the test Docker engine is not running: run test/setup/docker-engine.sh start");
  return host;
}

let host: string;
let image: string;
let docker: Dockerode;
let backend: DockerBackend;
let kernel: RuntimeKernel;
let provider: RuntimeProvider;
let sessionRoot: string;

beforeAll(async () => {
  host = dockerHost();
  image = await nodePluginImage(host);
  docker = new Dockerode({ socketPath: host.replace(/^unix:\/\//, "") });
  sessionRoot = mkdtempSync(join(tmpdir(), "rk-gds-"));
  backend = new DockerBackend({ host, namePrefix: "rk-gestalt" });
  kernel = createRuntimeKernel({
    backend,
    kernelId: "gestalt-docker",
    profiles: { [GESTALT_PLUGIN_PROFILE]: { runnable: {} } },
  });
  provider = kernelRuntimeProvider(kernel, {
    name: "docker",
    socket: { kind: "shared-folder", mountPath: "/workspace" },
    sessionRoot,
  });
}, 300_000);

afterAll(async () => {
  await kernel?.shutdown();
  rmSync(sessionRoot, { recursive: true, force: true });
});

function pluginHost(plugin: Record<string, unknown> = {}): PluginHost {
  return createPluginHost({
    config: loadGestaltConfig({
      runtime: { providers: { docker: { driver: "docker", default: true } } },
      plugins: {
        support: {
          command: "/usr/bin/node",
          args: ["/plugin/plugin.mjs"],
          execution: { mode: "hosted", runtime: { image } },
          ...plugin,
        },
      },
    }),
    drivers: { docker: () => provider },
  });
}

/** This kernel's containers that still exist. */
async function containers(): Promise<Dockerode.ContainerInfo[]> {
  return docker.listContainers({
    all: true,
    filters: { label: ["runtime-kernel.dev/kernel-id=gestalt-docker"] },
  });
}

describe("a hosted plugin in a Docker container", () => {
  it("starts, is dialled back through the shared session folder, answers, and is removed on stop", async () => {
    const h = pluginHost();
    try {
      const started = await h.startPlugin("support");
      expect(started.provider).toBe("docker");
      await expectServesFromWorkspace(started, sessionRoot, "from a container");

      const running = await containers();
      expect(running).toHaveLength(1);
      expect(running[0]?.Image).toBe(image);
      expect(running[0]?.Labels["gestalt.dev/session"]).toBe(started.sessionId);
      expect((await provider.getSession({ sessionId: started.sessionId })).state).toBe("running");

      await started.stop();
      expect(await containers()).toEqual([]);
      expect(readdirSync(sessionRoot)).toEqual([]);
      expect((await provider.getSession({ sessionId: started.sessionId })).state).toBe("stopped");
    } finally {
      await h.close();
    }
  });

  it("reports a plugin that exits before serving, with its exit code and log, and leaves no container", async () => {
    const h = pluginHost({ args: ["/plugin/plugin.mjs", "--exit-before-serving=3"] });
    try {
      const error = await h.startPlugin("support").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HostedPluginError);
      const message = (error as Error).message;
      expect(message).toContain("start hosted plugin: ");
      expect(message).toContain('plugin "support" exited before serving (exit code 3)');
      expect(message).toContain("fatal: plugin support cannot start: missing credentials");
      expect(await containers()).toEqual([]);
      expect(readdirSync(sessionRoot)).toEqual([]);
    } finally {
      await h.close();
    }
  });

  it("refuses hostname egress before any container starts: a container with no network advertises none", async () => {
    const h = pluginHost({ allowedHosts: ["api.example.com"] });
    try {
      const error = await h.startPlugin("support").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProfileRefusedError);
      expect((error as Error).message).toContain(
        'runtime provider "docker" cannot preserve hostname-based egress required by this provider',
      );
      expect(await containers()).toEqual([]);
      expect(readdirSync(sessionRoot)).toEqual([]);
    } finally {
      await h.close();
    }
  });
});
