/**
 * `runtime-kernel gestalt-provider` with the Docker backend, launched and driven by the host
 * as gestaltd would: the upstream-like test plugin runs in a container (an image holding
 * only Node), watches its parent as upstream's SDK plugins do and stays up (its parent is
 * the container's init, PID 1, which is what the provider tells it), and sees the git
 * workspace prepared in its session.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPluginHost, loadGestaltConfig } from "../../../src/gestalt/index.js";
import { makeRepository } from "../../fixtures/gestalt/git-repo.js";
import { nodePluginImage, PLUGIN_IN_IMAGE } from "../../fixtures/gestalt/node-image.js";
import { PROVIDER_COMMAND } from "../gestalt/gestaltd.js";
import { call, EchoClient, eventuallyAsync, pluginEnv } from "../gestalt/helpers.js";
import { dockerHost, engine, testKernelId } from "./support.js";

let image: string;
let scratch: string;
let repo: { url: string; feature: string };
const kernelId = testKernelId("gestalt-provider");

beforeAll(async () => {
  image = await nodePluginImage(dockerHost());
  scratch = mkdtempSync(join(tmpdir(), "rk-gpd-"));
  mkdirSync(join(scratch, "repo"));
  repo = makeRepository(join(scratch, "repo"));
}, 300_000);

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** This kernel's containers that still exist. */
const containers = () =>
  engine().listContainers({ all: true, filters: { label: [`runtime-kernel.dev/kernel-id=${kernelId}`] } });

describe("runtime-kernel gestalt-provider on the Docker backend", () => {
  it("hosts the parent-watching plugin in a container, which stays up and sees its workspace", async () => {
    const sessionRoot = join(scratch, "sessions");
    const host = createPluginHost({
      config: loadGestaltConfig({
        runtime: {
          providers: {
            docker: {
              source: PROVIDER_COMMAND,
              default: true,
              config: {
                backend: { type: "docker", options: { host: dockerHost(), namePrefix: "rk-gpd" } },
                kernelId,
                sessionRoot,
              },
            },
          },
        },
        plugins: {
          support: { ...PLUGIN_IN_IMAGE, execution: { mode: "hosted", runtime: { image } } },
        },
      }),
      providerOutput: () => {},
    });
    try {
      const started = await host.startPlugin("support");
      expect(started.dialTarget.startsWith(`unix://${sessionRoot}/`)).toBe(true);
      const echo = started.client(EchoClient);
      const { env, ppid, cwd } = await pluginEnv(echo);
      // Its parent is the container's init, and that is what it was told.
      expect(ppid).toBe(1);
      expect(env.GESTALT_PLUGIN_PARENT_PID).toBe("1");
      expect(env.GESTALT_PLUGIN_SOCKET).toBe("/workspace/plugin.sock");
      expect(cwd).toBe("/workspace");
      await eventuallyAsync(
        async () => (await pluginEnv(echo)).parentChecks >= 3,
        "three parent checks",
        15_000,
      );
      expect(await call(echo.say, echo, { text: "from a container" })).toMatchObject({
        text: "from a container",
      });

      // A workspace prepared by the provider, at the path the plugin sees.
      const provider = await host.provider("docker");
      const prepared = await provider.prepareWorkspace!({
        sessionId: started.sessionId,
        agentSessionId: "agent-1",
        workspace: { checkouts: [{ url: repo.url, ref: "feature", path: "repo" }], cwd: "repo" },
      });
      expect(prepared).toEqual({
        root: "/workspace/workspaces/agent-1",
        cwd: "/workspace/workspaces/agent-1/repo",
      });
      expect(await call(echo.read, echo, { path: `${prepared.cwd}/feature.txt` })).toEqual({
        text: "feature\n",
      });
      expect((await containers()).length).toBe(1);
    } finally {
      await host.close();
    }
    expect(await containers()).toEqual([]);
  });
});
