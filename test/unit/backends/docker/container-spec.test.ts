import { describe, expect, it } from "vitest";
import { LABELS, type StartRequest } from "../../../../src/backends/backend.js";
import { BACKEND_LABEL, buildContainerSpec } from "../../../../src/backends/docker/container-spec.js";
import { DockerBackend } from "../../../../src/backends/docker/index.js";
import { resolveProfile } from "../../../../src/backends/docker/options.js";
import { isRuntimeKernelError } from "../../../../src/errors.js";

const SECRET = "sk-live-0123456789abcdef";

function request(overrides: Partial<StartRequest> = {}): StartRequest {
  return {
    kernelId: "k1",
    workloadId: "agent-7",
    runId: "run-1",
    profile: "agent",
    owner: "alice",
    runnable: { image: "runtime-kernel/busybox:test", command: ["sleep", "600"] },
    env: { MODE: "test", API_TOKEN: SECRET },
    labels: { [LABELS.maxLifetimeAt]: "1900000000000", [LABELS.createdAt]: "1800000000000" },
    ...overrides,
  };
}

const build = (req: StartRequest, ...layers: Parameters<typeof resolveProfile>) =>
  buildContainerSpec(req, resolveProfile(...layers), "rk");

describe("the container of a run", () => {
  it("is sandboxed by default: no network, no capabilities, no-new-privileges, init, pids limit", () => {
    const { options } = build(request());
    expect(options.HostConfig).toMatchObject({
      NetworkMode: "none",
      CapDrop: ["ALL"],
      CapAdd: [],
      SecurityOpt: ["no-new-privileges:true"],
      Init: true,
      PidsLimit: 1024,
      ReadonlyRootfs: false,
      RestartPolicy: { Name: "no" },
      AutoRemove: false,
      LogConfig: { Type: "json-file", Config: { "max-size": "16m", "max-file": "1" } },
    });
    expect(options.HostConfig?.Privileged).toBeUndefined();
    expect(options.Tty).toBe(false);
    expect(options.StopSignal).toBe("SIGTERM");
  });

  it("runs the runnable's image and argv, with the environment as KEY=value", () => {
    const { options, name, image } = build(request());
    expect(image).toBe("runtime-kernel/busybox:test");
    expect(options.Image).toBe(image);
    expect(options.Cmd).toEqual(["sleep", "600"]);
    expect(options.Env).toEqual(["MODE=test", `API_TOKEN=${SECRET}`]);
    expect(options.name).toBe(name);
    expect(name).toMatch(/^rk-agent-7-[0-9a-f]{10}$/);
    expect(options.Hostname).toBe("agent-7");
  });

  it("carries the kernel's identity and deadlines in labels, and never the environment", () => {
    const { options } = build(request(), { labels: { team: "ml", [LABELS.kernelId]: "forged" } });
    expect(options.Labels).toEqual({
      team: "ml",
      [LABELS.kernelId]: "k1",
      [LABELS.workloadId]: "agent-7",
      [LABELS.runId]: "run-1",
      [LABELS.owner]: "alice",
      [LABELS.profile]: "agent",
      [LABELS.maxLifetimeAt]: "1900000000000",
      [LABELS.createdAt]: "1800000000000",
      [BACKEND_LABEL]: "docker",
    });
    expect(JSON.stringify(options.Labels)).not.toContain(SECRET);
  });

  it("takes memory, CPU, pids and GPU limits from resources", () => {
    const { options } = build(request({ resources: { memoryMb: 256, cpu: 1.5, pids: 64, gpu: 1 } }));
    expect(options.HostConfig).toMatchObject({
      Memory: 256 * 1024 * 1024,
      MemorySwap: 256 * 1024 * 1024,
      NanoCpus: 1_500_000_000,
      PidsLimit: 64,
      DeviceRequests: [{ Driver: "", Count: 1, Capabilities: [["gpu"]] }],
    });
  });

  it("bind-mounts the workspace at /workspace, read-write, and starts there", () => {
    const { options } = build(request({ workspace: "/srv/ws/agent-7" }));
    expect(options.HostConfig?.Mounts).toEqual([
      { Type: "bind", Source: "/srv/ws/agent-7", Target: "/workspace", ReadOnly: false },
    ]);
    expect(options.WorkingDir).toBe("/workspace");
  });

  it("mounts the workspace read-only where the profile says so, and keeps an explicit cwd", () => {
    const req = request({ workspace: "/srv/ws", runnable: { image: "i:1", cwd: "/app" } });
    const { options } = build(req, { workspaceReadOnly: true, workspaceMountPath: "/data" });
    expect(options.HostConfig?.Mounts?.[0]).toMatchObject({ Target: "/data", ReadOnly: true });
    expect(options.WorkingDir).toBe("/app");
  });

  it("binds each mount after the workspace, one per mount, read-only where asked", () => {
    const { options } = build(
      request({
        workspace: "/srv/ws/agent-7",
        mounts: [
          { source: "/srv/data/set-1", target: "/data", readOnly: true, root: "/srv/data" },
          { source: "/srv/out", target: "/out", readOnly: false, root: "/srv/out" },
        ],
      }),
    );
    expect(options.HostConfig?.Mounts).toEqual([
      { Type: "bind", Source: "/srv/ws/agent-7", Target: "/workspace", ReadOnly: false },
      { Type: "bind", Source: "/srv/data/set-1", Target: "/data", ReadOnly: true },
      { Type: "bind", Source: "/srv/out", Target: "/out", ReadOnly: false },
    ]);
  });

  it("refuses a mount over the workspace or with a relative path, naming it", () => {
    const mounts = [
      { source: "/srv/a", target: "/workspace", readOnly: true, root: "/srv" },
      { source: "srv/b", target: "/b", readOnly: false, root: "/srv" },
    ];
    const error = (() => {
      try {
        build(request({ workspace: "/srv/ws", mounts }));
      } catch (e) {
        return e as { issues: Array<{ path: string }> };
      }
      throw new Error("accepted");
    })();
    expect(error.issues.map((i) => i.path)).toEqual(["mounts.0.target", "mounts.1.source"]);
  });

  it("loosens only what the profile names", () => {
    const { options } = build(request(), {
      network: "bridge",
      user: "65534:65534",
      readOnlyRootfs: true,
      tmpfs: { "/tmp": "rw,size=16m" },
      capAdd: ["NET_BIND_SERVICE"],
      noNewPrivileges: false,
      init: false,
      entrypoint: ["/bin/sh", "-c"],
      stopSignal: "SIGINT",
      runtime: "runsc",
      shmSizeMb: 128,
      logMaxSizeMb: 0,
    });
    expect(options.User).toBe("65534:65534");
    expect(options.Entrypoint).toEqual(["/bin/sh", "-c"]);
    expect(options.StopSignal).toBe("SIGINT");
    expect(options.Labels?.["runtime-kernel.dev/stop-signal"]).toBe("SIGINT");
    expect(options.HostConfig).toMatchObject({
      NetworkMode: "bridge",
      ReadonlyRootfs: true,
      Tmpfs: { "/tmp": "rw,size=16m" },
      CapDrop: ["ALL"],
      CapAdd: ["NET_BIND_SERVICE"],
      SecurityOpt: [],
      Init: false,
      Runtime: "runsc",
      ShmSize: 128 * 1024 * 1024,
    });
    expect(options.HostConfig?.LogConfig).toBeUndefined();
  });

  it.each([
    [{ runnable: { command: ["x"] } }, "runnable.image"],
    [{ runnable: { image: "i:1", command: "sleep 600" as never } }, "runnable.command"],
    [{ runnable: { image: "i:1", cwd: "relative" } }, "runnable.cwd"],
    [{ workspace: "relative/ws" }, "workspace"],
    [{ env: { "A=B": "x" } }, "env.A=B"],
    [{ resources: { memoryMb: 1 } }, "resources.memoryMb"],
    [{ resources: { cpu: 0 } }, "resources.cpu"],
    [{ resources: { pids: 1.5 } }, "resources.pids"],
  ])("refuses %j with INVALID_SPEC naming %s", (overrides, path) => {
    try {
      build(request(overrides as Partial<StartRequest>));
      expect.unreachable();
    } catch (error) {
      expect(isRuntimeKernelError(error, "INVALID_SPEC")).toBe(true);
      expect((error as Error).message).toContain(path);
    }
  });

  it("never puts an environment value in an error", () => {
    try {
      build(request({ env: { "": SECRET, "BAD=NAME": SECRET } }));
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).not.toContain(SECRET);
      expect(JSON.stringify(error)).not.toContain(SECRET);
    }
  });

  it("is layered by the backend: defaults, then the backend's profile, then runnable.docker", () => {
    const backend = new DockerBackend({
      socketPath: "/nonexistent.sock",
      defaults: { pidsLimit: 100, user: "1000" },
      profiles: { agent: { pidsLimit: 200, network: "bridge" } },
    });
    const spec = backend.containerSpec(
      request({ runnable: { image: "i:1", docker: { network: "host", readOnlyRootfs: true } } }),
    );
    expect(spec.options.HostConfig).toMatchObject({
      PidsLimit: 200,
      NetworkMode: "host",
      ReadonlyRootfs: true,
    });
    expect(spec.options.User).toBe("1000");
    const other = backend.containerSpec(request({ profile: "other" }));
    expect(other.options.HostConfig).toMatchObject({ PidsLimit: 100, NetworkMode: "none" });
  });

  it("refuses a bad runnable.docker at start, naming the field, before calling the engine", async () => {
    const backend = new DockerBackend({ socketPath: "/nonexistent.sock" });
    await expect(
      backend.start(request({ runnable: { image: "i:1", docker: { network: 7 } } }), {
        signal: new AbortController().signal,
      }),
    ).rejects.toThrowError(/runnable\.docker\.network/);
  });
});
