/**
 * What `runtime-kernel gestalt-provider` takes from ConfigureProvider's config: defaults per
 * backend (where the plugin sees its session folder, which parent it has), and refusals that
 * name the field.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseGestaltProviderConfig } from "../../../src/cli/gestalt-provider-config.js";

describe("parseGestaltProviderConfig", () => {
  it("runs plugins on the process backend by default, in a session root of its own", () => {
    expect(parseGestaltProviderConfig({}, "kernel")).toEqual({
      backend: { type: "process", options: {} },
      kernelId: "gestalt-kernel",
      profiles: { "gestalt-plugin": { runnable: {} } },
      profile: "gestalt-plugin",
      sessionRoot: join(tmpdir(), "runtime-kernel-gestalt", "kernel"),
      socket: { kind: "shared-folder" },
      egressMode: "none",
      graceMs: 2_000,
    });
  });

  it("on Docker: the folder at the backend's mount path, and the init as the plugin's parent", () => {
    expect(parseGestaltProviderConfig({ backend: "docker" }, "d")).toMatchObject({
      mountPath: "/workspace",
      pluginParentPid: 1,
    });
    expect(
      parseGestaltProviderConfig(
        { backend: { type: "docker", options: { defaults: { init: false, workspaceMountPath: "/w" } } } },
        "d",
      ),
    ).toMatchObject({ mountPath: "/w", pluginParentPid: false });
  });

  it("on Kubernetes: the profile's workspace mount path, and no parent to watch", () => {
    const options = { profiles: { "gestalt-plugin": { workspace: { mountPath: "/ws", volume: {} } } } };
    expect(parseGestaltProviderConfig({ backend: { type: "kubernetes", options } }, "k")).toMatchObject({
      mountPath: "/ws",
      pluginParentPid: false,
    });
    expect(() => parseGestaltProviderConfig({ backend: "kubernetes" }, "k")).toThrow(
      /mountPath: is required on kubernetes unless backend\.options\.profiles\.gestalt-plugin\.workspace/,
    );
  });

  it.each([
    [{ backend: "vm" }, "backend.type: must be one of process, docker, kubernetes"],
    [{ backend: { type: "docker", options: 3 } }, "backend.options: must be a mapping"],
    [{ sessionRoot: "relative" }, "sessionRoot: must be an absolute path"],
    [{ socket: { kind: "port" } }, "socket.port"],
    [{ graceMs: 1.5 }, "graceMs: must be an integer number of milliseconds"],
    [{ pluginParentPid: true }, "pluginParentPid: must be a pid or false"],
    [{ profile: "other" }, "profile: names no profile of profiles (has: gestalt-plugin)"],
    [
      { backend: "docker", egressMode: "hostname" },
      "egressMode: hostname egress is enforced by a local proxy",
    ],
    [
      { profiles: { "gestalt-plugin": { runnable: {}, idleTimeoutMs: -1 } } },
      "profiles.gestalt-plugin.idleTimeoutMs",
    ],
    [{ sesionRoot: "/x" }, "sesionRoot"],
  ])("refuses %j, naming the field", (config, message) => {
    expect(() => parseGestaltProviderConfig(config, "p")).toThrow(
      expect.objectContaining({ code: "INVALID_SPEC", message: expect.stringContaining(message) }),
    );
  });
});
