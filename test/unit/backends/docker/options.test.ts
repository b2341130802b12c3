import { describe, expect, it } from "vitest";
import { DockerBackend } from "../../../../src/backends/docker/index.js";
import {
  connectionFor,
  PROFILE_DEFAULTS,
  parseBackendOptions,
  parseRunnableDocker,
  resolveProfile,
} from "../../../../src/backends/docker/options.js";
import { isRuntimeKernelError } from "../../../../src/errors.js";

describe("DockerBackend options", () => {
  it("connect nowhere at construction and name the backend docker", () => {
    const backend = new DockerBackend({ socketPath: "/nonexistent/docker.sock" });
    expect(backend.name).toBe("docker");
  });

  it("refuse an unknown option, naming it", () => {
    expect(() => new DockerBackend({ sockPath: "/x" } as never)).toThrowError(/sockPath/);
  });

  it("refuse a name prefix that is not a short DNS-1123 label", () => {
    expect(() => parseBackendOptions({ namePrefix: "Bad_Prefix" })).toThrowError(/namePrefix/);
    expect(() => parseBackendOptions({ namePrefix: "x".repeat(21) })).toThrowError(/namePrefix/);
  });

  it("refuse a host that is not in DOCKER_HOST syntax", () => {
    expect(() => parseBackendOptions({ host: "/var/run/docker.sock" })).toThrowError(/host: must look like/);
  });

  it("name the profile and field of a bad per-profile setting", () => {
    expect(() => parseBackendOptions({ profiles: { agent: { pidsLimit: -1 } } })).toThrowError(
      /profiles\.agent\.pidsLimit/,
    );
  });

  it("turn DOCKER_HOST syntax into dockerode connection options", () => {
    expect(connectionFor("unix:///run/x/docker.sock")).toEqual({ socketPath: "/run/x/docker.sock" });
    expect(connectionFor("tcp://127.0.0.1:2375")).toEqual({
      host: "127.0.0.1",
      port: "2375",
      protocol: "http",
    });
    expect(connectionFor("https://engine.local")).toEqual({
      host: "engine.local",
      port: 2376,
      protocol: "https",
    });
  });
});

describe("runnable.docker", () => {
  it("is optional", () => {
    expect(parseRunnableDocker(undefined)).toEqual({});
  });

  it("refuses an unknown key with INVALID_SPEC naming runnable.docker.<key>", () => {
    try {
      parseRunnableDocker({ netwrk: "host" }, "w1");
      expect.unreachable();
    } catch (error) {
      expect(isRuntimeKernelError(error, "INVALID_SPEC")).toBe(true);
      expect((error as Error).message).toMatch(/runnable\.docker/);
      expect((error as Error).message).toMatch(/netwrk/);
    }
  });

  it.each([
    [{ user: "root; rm -rf /" }, "runnable.docker.user"],
    [{ tmpfs: { tmp: "rw" } }, "runnable.docker.tmpfs.tmp"],
    [{ workspaceMountPath: "workspace" }, "runnable.docker.workspaceMountPath"],
    [{ capAdd: ["net admin"] }, "runnable.docker.capAdd.0"],
    [{ stopSignal: "TERM" }, "runnable.docker.stopSignal"],
    [{ pullPolicy: "sometimes" }, "runnable.docker.pullPolicy"],
    [{ imagePullAuth: { dockerConfigJson: "not json" } }, "runnable.docker.imagePullAuth.dockerConfigJson"],
  ])("refuses %j naming %s", (value, path) => {
    expect(() => parseRunnableDocker(value)).toThrowError(path);
  });

  it("never echoes a credential it refuses", () => {
    const secret = "hunter2-very-secret";
    try {
      parseRunnableDocker({ imagePullAuth: { dockerConfigJson: `{"auth": "${secret}"` } });
      expect.unreachable();
    } catch (error) {
      expect(JSON.stringify(error)).not.toContain(secret);
      expect((error as Error).message).not.toContain(secret);
    }
  });
});

describe("profile resolution", () => {
  it("starts from the safe defaults: no network, no capabilities, no-new-privileges, init, pids limit, no pulls", () => {
    expect(resolveProfile()).toEqual(PROFILE_DEFAULTS);
    expect(PROFILE_DEFAULTS).toMatchObject({
      network: "none",
      capDrop: ["ALL"],
      capAdd: [],
      noNewPrivileges: true,
      init: true,
      pidsLimit: 1024,
      pullPolicy: "never",
      workspaceMountPath: "/workspace",
    });
  });

  it("lets later layers win field by field", () => {
    const resolved = resolveProfile({ network: "bridge", user: "1000" }, { user: "65534" }, undefined, {});
    expect(resolved.network).toBe("bridge");
    expect(resolved.user).toBe("65534");
    expect(resolved.capDrop).toEqual(["ALL"]);
  });
});
