/**
 * DockerBackend against the real test engine: what a container of a run looks like, how it
 * is sandboxed, how exits, OOM kills and vanished containers are reported, recovery by label,
 * logs, and failures that must leave nothing behind.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Dockerode from "dockerode";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type ExitStatus, LABELS, type LogEntry, type StartRequest } from "../../../src/backends/backend.js";
import { DockerBackend, type DockerHandle } from "../../../src/backends/docker/index.js";
import { isRuntimeKernelError } from "../../../src/errors.js";
import { backendFor, engine, never, removeAll, startRequest, testImage, testKernelId } from "./support.js";

const SECRET = "sk-test-5f0c1d2e3b4a69788796a5b4c3d2e1f0";
const kernelId = testKernelId("backend");
const backend = backendFor();
const docker = engine();

afterEach(() => removeAll(kernelId));
afterAll(() => backend.close());

const exitOf = (b: DockerBackend, handle: DockerHandle) =>
  new Promise<ExitStatus>((resolve) => b.watchExit(handle, resolve));

async function collect(iterable: AsyncIterable<LogEntry>): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const entry of iterable) out.push(entry);
  return out;
}

/** Starts `command`, waits for its exit, and returns the exit and its stdout lines. */
async function runToExit(
  command: string[],
  overrides: Partial<StartRequest> = {},
  b: DockerBackend = backend,
): Promise<{ status: ExitStatus; stdout: string[]; stderr: string[]; handle: DockerHandle }> {
  const handle = await b.start(startRequest(kernelId, command, overrides), never());
  const status = await exitOf(b, handle);
  const logs = await collect(b.logs(handle, {}));
  return {
    status,
    handle,
    stdout: logs.filter((l) => l.stream === "stdout").map((l) => l.line),
    stderr: logs.filter((l) => l.stream === "stderr").map((l) => l.line),
  };
}

const inspect = (handle: DockerHandle) => docker.getContainer(handle.containerId).inspect();

describe("a run's container", () => {
  it("is named <prefix>-<workloadId>-<run hash> and labelled with the kernel's identity and deadlines", async () => {
    const req = startRequest(kernelId, ["sleep", "600"], {
      workloadId: "agent-one",
      owner: "alice",
      labels: { [LABELS.maxLifetimeAt]: "1900000000000" },
    });
    const handle = await backend.start(req, never());
    expect(handle).toEqual({
      workloadId: "agent-one",
      runId: req.runId,
      backend: "docker",
      containerId: expect.stringMatching(/^[0-9a-f]{64}$/),
      name: expect.stringMatching(/^rk-agent-one-[0-9a-f]{10}$/),
    });
    const info = await inspect(handle);
    expect(info.Name).toBe(`/${handle.name}`);
    expect(info.State.Running).toBe(true);
    expect(info.Config.Labels).toMatchObject({
      [LABELS.kernelId]: kernelId,
      [LABELS.workloadId]: "agent-one",
      [LABELS.runId]: req.runId,
      [LABELS.owner]: "alice",
      [LABELS.profile]: "test",
      [LABELS.maxLifetimeAt]: "1900000000000",
      "runtime-kernel.dev/backend": "docker",
    });
  });

  it("runs the image as it is on the engine, never pulling it", async () => {
    const events: string[] = [];
    const since = Math.floor(Date.now() / 1000) - 1;
    await runToExit(["true"]);
    const stream = (await docker.getEvents({
      since,
      until: Math.floor(Date.now() / 1000) + 1,
      filters: { type: ["image"] },
    })) as unknown as NodeJS.ReadableStream;
    for await (const chunk of stream) events.push(String(chunk));
    expect(events.join("")).not.toMatch(/"Action":"pull"/);
  });
});

describe("sandbox defaults", () => {
  it("give no network but loopback, no capabilities, no-new-privileges, and an init as PID 1", async () => {
    const { status, stdout } = await runToExit([
      "sh",
      "-c",
      "cat /proc/net/dev | tail -n +3 | cut -d: -f1; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; cat /proc/1/cmdline | tr '\\0' ' '; echo",
    ]);
    expect(status.exitCode).toBe(0);
    expect(stdout.map((l) => l.trim())).toEqual([
      "lo",
      "CapEff:\t0000000000000000",
      "NoNewPrivs:\t1",
      expect.stringMatching(/^\/sbin\/docker-init -- sh -c /),
    ]);
  });

  it("cap the number of processes (1024 unless resources.pids says otherwise)", async () => {
    const byDefault = await runToExit(["cat", "/sys/fs/cgroup/pids/pids.max"]);
    expect(byDefault.stdout).toEqual(["1024"]);
    const limited = await runToExit(["cat", "/sys/fs/cgroup/pids/pids.max"], { resources: { pids: 32 } });
    expect(limited.stdout).toEqual(["32"]);
  });

  it("apply memory and CPU limits from resources", async () => {
    const { stdout, handle } = await runToExit(["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"], {
      resources: { memoryMb: 64, cpu: 0.5 },
    });
    expect(stdout).toEqual([String(64 * 1024 * 1024)]);
    const info = await inspect(handle);
    expect(info.HostConfig.NanoCpus).toBe(500_000_000);
    expect(info.HostConfig.Memory).toBe(64 * 1024 * 1024);
  });

  it("are loosened per profile: read-only root, a non-root user, a tmpfs", async () => {
    const b = backendFor({
      profiles: {
        locked: { readOnlyRootfs: true, user: "65534:65534", tmpfs: { "/scratch": "rw,size=1m" } },
      },
    });
    try {
      const { status, stdout } = await runToExit(
        ["sh", "-c", "id -u; touch /rootfs-write 2>/dev/null || echo ro; touch /scratch/x && echo tmpfs-ok"],
        { profile: "locked" },
        b,
      );
      expect(status.exitCode).toBe(0);
      expect(stdout).toEqual(["65534", "ro", "tmpfs-ok"]);
    } finally {
      await b.close();
    }
  });

  it("let a profile's runnable.docker grant a network", async () => {
    const { stdout } = await runToExit(["sh", "-c", "cat /proc/net/dev | wc -l"], {
      runnable: { image: testImage(), docker: { network: "host" } },
    });
    expect(Number(stdout[0])).toBeGreaterThan(3); // the host's interfaces, not just lo
  });
});

describe("the workspace", () => {
  const dir = mkdtempSync(join(tmpdir(), "rk-docker-ws-"));
  chmodSync(dir, 0o777);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is bind-mounted read-write at /workspace, which is the working directory", async () => {
    writeFileSync(join(dir, "input.txt"), "from the host\n");
    const { status, stdout } = await runToExit(
      ["sh", "-c", "pwd; cat input.txt; echo from the workload > output.txt"],
      {
        workspace: dir,
      },
    );
    expect(status.exitCode).toBe(0);
    expect(stdout).toEqual(["/workspace", "from the host"]);
    expect(readFileSync(join(dir, "output.txt"), "utf8")).toBe("from the workload\n");
  });

  it("is read-only where the profile says so", async () => {
    const { stdout } = await runToExit(["sh", "-c", "touch /workspace/x 2>/dev/null && echo rw || echo ro"], {
      workspace: dir,
      runnable: { image: testImage(), docker: { workspaceReadOnly: true } },
    });
    expect(stdout).toEqual(["ro"]);
  });

  it("must exist: a missing one fails the start and leaves nothing", async () => {
    const req = startRequest(kernelId, ["true"], { workspace: join(dir, "does-not-exist") });
    await expect(backend.start(req, never())).rejects.toSatisfy((e: unknown) =>
      isRuntimeKernelError(e, "START_FAILED"),
    );
    expect(await backend.discover({ kernelId })).toEqual([]);
  });
});

describe("a mount set", () => {
  const root = mkdtempSync(join(tmpdir(), "rk-docker-mounts-"));
  for (const name of ["data", "out", "other"]) mkdirSync(join(root, name));
  chmodSync(join(root, "out"), 0o777);
  writeFileSync(join(root, "data", "in.txt"), "input\n");
  writeFileSync(join(root, "other", "secret.txt"), "not yours\n");
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("binds each mount at its target, read-only where asked, and nothing beside them", async () => {
    const script = [
      "cat /data/in.txt",
      "touch /data/x 2>/dev/null && echo data-rw || echo data-ro",
      "echo written > /out/result.txt && echo out-rw",
      "ls / | grep -c other || true",
      "cat /other/secret.txt 2>/dev/null || echo no-secret",
    ].join("; ");
    const { status, stdout } = await runToExit(["sh", "-c", script], {
      mounts: [
        { source: join(root, "data"), target: "/data", readOnly: true, root },
        { source: join(root, "out"), target: "/out", readOnly: false, root },
      ],
    });
    expect(status.exitCode).toBe(0);
    expect(stdout).toEqual(["input", "data-ro", "out-rw", "0", "no-secret"]);
    expect(readFileSync(join(root, "out", "result.txt"), "utf8")).toBe("written\n");
  });
});

describe("brokered credentials", () => {
  it("reach the workload's environment and nothing else: not labels, handle, discover or errors", async () => {
    const req = startRequest(kernelId, ["sh", "-c", 'test "$API_TOKEN" = "$EXPECTED" && echo same'], {
      env: { API_TOKEN: SECRET, EXPECTED: SECRET },
    });
    const handle = await backend.start(req, never());
    const status = await exitOf(backend, handle);
    expect(status.exitCode).toBe(0);
    expect((await collect(backend.logs(handle, {}))).map((l) => l.line)).toEqual(["same"]);
    const info = await inspect(handle);
    expect(JSON.stringify(info.Config.Labels)).not.toContain(SECRET);
    expect(JSON.stringify(handle)).not.toContain(SECRET);
    expect(JSON.stringify(await backend.discover({ kernelId }))).not.toContain(SECRET);

    const failing = startRequest(kernelId, ["true"], {
      env: { API_TOKEN: SECRET },
      runnable: { image: "runtime-kernel/absent:never" },
    });
    const error = await backend.start(failing, never()).catch((e: unknown) => e);
    expect(isRuntimeKernelError(error, "START_FAILED")).toBe(true);
    expect(String((error as Error).message)).not.toContain(SECRET);
    expect(JSON.stringify(error)).not.toContain(SECRET);
    expect(String((error as Error).cause)).not.toContain(SECRET);
  });
});

describe("exits", () => {
  it("report the workload's own exit code", async () => {
    expect((await runToExit(["sh", "-c", "exit 42"])).status).toEqual({ exitCode: 42 });
  });

  it("report SIGTERM (143) after terminate: the init passes it to the workload", async () => {
    const handle = await backend.start(startRequest(kernelId, ["sleep", "600"]), never());
    const exited = exitOf(backend, handle);
    await backend.terminate(handle, { graceMs: 10_000 });
    expect(await exited).toEqual({ exitCode: 143, signal: "SIGTERM" });
    expect(await backend.exitCode(handle)).toBe(143);
  });

  it("terminate returns without waiting for a workload that ignores it; kill then ends it with 137", async () => {
    const handle = await backend.start(
      startRequest(kernelId, ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"]),
      never(),
    );
    const exited = exitOf(backend, handle);
    await backend.terminate(handle, { graceMs: 60_000 });
    expect(await backend.exitCode(handle)).toBeNull();
    await backend.kill(handle);
    expect(await exited).toEqual({ exitCode: 137, signal: "SIGKILL" });
  });

  it("send the profile's own stop signal, also through a handle found by discover", async () => {
    const req = startRequest(
      kernelId,
      ["sh", "-c", "trap 'exit 7' INT; trap '' TERM; while :; do sleep 1; done"],
      {
        runnable: { image: testImage(), docker: { stopSignal: "SIGINT", init: false } },
      },
    );
    const handle = await backend.start(req, never());
    expect(handle.stopSignal).toBe("SIGINT");
    const fresh = backendFor();
    try {
      const [found] = await fresh.discover({ kernelId });
      expect(found?.handle.stopSignal).toBe("SIGINT");
      const exited = exitOf(fresh, found!.handle);
      await fresh.terminate(found!.handle, { graceMs: 10_000 });
      expect((await exited).exitCode).toBe(7);
    } finally {
      await fresh.close();
    }
  });

  it("report an OOM kill", async () => {
    const { status } = await runToExit(["sh", "-c", "exec dd if=/dev/zero of=/dev/null bs=64M count=1"], {
      resources: { memoryMb: 16 },
    });
    expect(status).toEqual({ exitCode: 137, signal: "SIGKILL", oomKilled: true });
  });

  it("are pushed also when the workload ended before anyone watched", async () => {
    const handle = await backend.start(startRequest(kernelId, ["true"]), never());
    await expect.poll(() => backend.exitCode(handle)).toBe(0);
    expect(await exitOf(backend, handle)).toEqual({ exitCode: 0 });
  });

  it("show a missing executable as exit 127 (the init runs, the exec inside fails)", async () => {
    const { status, stderr } = await runToExit(["/no/such/program"]);
    expect(status.exitCode).toBe(127);
    expect(stderr.join("\n")).toMatch(/no\/such\/program/);
  });

  it("fail the start itself when there is no init to run first", async () => {
    const req = startRequest(kernelId, ["/no/such/program"], {
      runnable: { image: testImage(), docker: { init: false } },
    });
    const error = await backend.start(req, never()).catch((e: unknown) => e);
    expect(isRuntimeKernelError(error, "START_FAILED")).toBe(true);
    expect((error as Error).message).toMatch(/no\/such\/program/);
    expect(await backend.discover({ kernelId })).toEqual([]);
  });
});

describe("a container removed behind the backend's back", () => {
  it("is reported lost by watchExit and exitCode, is not discovered, and cleans up", async () => {
    const handle = await backend.start(startRequest(kernelId, ["sleep", "600"]), never());
    const exited = exitOf(backend, handle);
    await docker.getContainer(handle.containerId).remove({ force: true });
    expect(await exited).toEqual({ exitCode: null, lost: true });
    await expect(backend.exitCode(handle)).rejects.toSatisfy((e: unknown) =>
      isRuntimeKernelError(e, "WORKLOAD_LOST"),
    );
    expect(await backend.discover({ kernelId })).toEqual([]);
    await backend.cleanup(handle);
  });
});

describe("start", () => {
  it("replaces a stale container of the same run (a start retried after a crash)", async () => {
    const req = startRequest(kernelId, ["sleep", "600"]);
    const stale = await docker.createContainer(backend.containerSpec(req).options);
    const handle = await backend.start(req, never());
    expect(handle.containerId).not.toBe(stale.id);
    await expect(stale.inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect((await inspect(handle)).State.Running).toBe(true);
  });

  it("refuses to replace another run's container that holds the name", async () => {
    const req = startRequest(kernelId, ["sleep", "600"]);
    const spec = backend.containerSpec(req).options;
    const other = await docker.createContainer({
      ...spec,
      Labels: { ...spec.Labels, [LABELS.runId]: "another-run" },
    });
    await expect(backend.start(req, never())).rejects.toSatisfy((e: unknown) =>
      isRuntimeKernelError(e, "WORKLOAD_CONFLICT"),
    );
    expect((await other.inspect()).Id).toBe(other.id);
  });

  it("fails at once for an image that is not on the engine, naming it and the pull policy", async () => {
    const req = startRequest(kernelId, ["true"], { runnable: { image: "runtime-kernel/absent:never" } });
    await expect(backend.start(req, never())).rejects.toThrowError(
      /runtime-kernel\/absent:never is not present.*pull policy is "never"/,
    );
    expect(await backend.discover({ kernelId })).toEqual([]);
  });

  it("pulls only when the policy allows, and reports a failed pull without the credentials", async () => {
    const password = "pull-password-0xDEADBEEF";
    const dockerConfigJson = JSON.stringify({
      auths: { "registry.invalid": { auth: Buffer.from(`robot:${password}`).toString("base64") } },
    });
    const req = startRequest(kernelId, ["true"], {
      runnable: {
        image: "registry.invalid/runtime-kernel/absent:1",
        docker: { pullPolicy: "if-not-present", imagePullAuth: { dockerConfigJson } },
      },
    });
    const error = await backend.start(req, never()).catch((e: unknown) => e);
    expect(isRuntimeKernelError(error, "START_FAILED")).toBe(true);
    expect((error as Error).message).toMatch(
      /Pulling image registry\.invalid\/runtime-kernel\/absent:1 failed/,
    );
    expect(JSON.stringify(error)).not.toContain(password);
    expect(String((error as Error).cause)).not.toContain(password);
    expect(await backend.discover({ kernelId })).toEqual([]);
  });

  it("aborted after the container was created removes it and rejects START_ABORTED", async () => {
    const controller = new AbortController();
    // A client that aborts the start right after the engine created the container.
    const client = engine();
    const create = client.createContainer.bind(client);
    client.createContainer = (async (options: Dockerode.ContainerCreateOptions) => {
      const container = await create(options);
      controller.abort(new Error("caller gave up"));
      return container;
    }) as typeof client.createContainer;
    const b = new DockerBackend({ docker: client });
    try {
      await expect(
        b.start(startRequest(kernelId, ["sleep", "600"]), { signal: controller.signal }),
      ).rejects.toSatisfy((e: unknown) => isRuntimeKernelError(e, "START_ABORTED"));
      expect(await b.discover({ kernelId })).toEqual([]);
    } finally {
      await b.close();
    }
  });
});

describe("cleanup", () => {
  it("removes the container with its anonymous volumes, and is idempotent", async () => {
    const handle = await backend.start(startRequest(kernelId, ["sleep", "600"]), never());
    await backend.kill(handle);
    await backend.cleanup(handle);
    await expect(inspect(handle)).rejects.toMatchObject({ statusCode: 404 });
    await backend.cleanup(handle);
  });
});

describe("discover", () => {
  it("gives a restarted kernel handles that drive the workloads, with exits it missed", async () => {
    const running = await backend.start(startRequest(kernelId, ["sleep", "600"]), never());
    const failed = await backend.start(startRequest(kernelId, ["sh", "-c", "exit 9"]), never());
    await expect.poll(() => backend.exitCode(failed)).toBe(9);

    const restarted = backendFor();
    try {
      const found = await restarted.discover({ kernelId });
      const byRun = new Map(found.map((f) => [f.handle.runId, f]));
      expect(byRun.get(running.runId)).toEqual({
        handle: running,
        labels: expect.objectContaining({ [LABELS.workloadId]: running.workloadId }),
        exit: null,
      });
      expect(byRun.get(failed.runId)?.exit).toEqual({ exitCode: 9 });
      const adopted = byRun.get(running.runId)!.handle;
      const exited = exitOf(restarted, adopted);
      await restarted.kill(adopted);
      expect((await exited).exitCode).toBe(137);
      await restarted.cleanup(adopted);
      await restarted.cleanup(byRun.get(failed.runId)!.handle);
      expect(await restarted.discover({ kernelId })).toEqual([]);
    } finally {
      await restarted.close();
    }
  });

  it("reports a container that was created but never started as lost, so it gets reaped", async () => {
    const req = startRequest(kernelId, ["sleep", "600"]);
    await docker.createContainer(backend.containerSpec(req).options);
    const [found] = await backend.discover({ kernelId });
    expect(found?.handle.runId).toBe(req.runId);
    expect(found?.exit).toEqual({ exitCode: null, lost: true });
  });
});

describe("logs", () => {
  it("separate stdout from stderr, in order, with times", async () => {
    const before = Date.now() - 2_000;
    const { handle } = await runToExit(["sh", "-c", "echo out-1; echo err-1 >&2; echo out-2"]);
    const logs = await collect(backend.logs(handle, {}));
    expect(logs.filter((l) => l.stream === "stdout").map((l) => l.line)).toEqual(["out-1", "out-2"]);
    expect(logs.filter((l) => l.stream === "stderr").map((l) => l.line)).toEqual(["err-1"]);
    for (const entry of logs) expect(entry.at).toBeGreaterThan(before);
  });

  it("give only the last lines with tail", async () => {
    const { handle } = await runToExit(["sh", "-c", "for i in 1 2 3 4 5; do echo line-$i; done"]);
    expect((await collect(backend.logs(handle, { tail: 2 }))).map((l) => l.line)).toEqual([
      "line-4",
      "line-5",
    ]);
  });

  it("follow new lines until the workload exits", async () => {
    const handle = await backend.start(
      startRequest(kernelId, ["sh", "-c", "for i in 1 2 3; do echo tick-$i; sleep 0.2; done"]),
      never(),
    );
    const lines = (await collect(backend.logs(handle, { follow: true }))).map((l) => l.line);
    expect(lines).toEqual(["tick-1", "tick-2", "tick-3"]);
  });

  it("stop following when the signal aborts", async () => {
    const handle = await backend.start(
      startRequest(kernelId, ["sh", "-c", "echo first; while :; do sleep 1; done"]),
      never(),
    );
    const controller = new AbortController();
    const seen: string[] = [];
    for await (const entry of backend.logs(handle, { follow: true, signal: controller.signal })) {
      seen.push(entry.line);
      controller.abort();
    }
    expect(seen).toEqual(["first"]);
  });

  it("of a removed container reject with WORKLOAD_LOST", async () => {
    const handle = await backend.start(startRequest(kernelId, ["true"]), never());
    await exitOf(backend, handle);
    await backend.cleanup(handle);
    await expect(collect(backend.logs(handle, {}))).rejects.toSatisfy((e: unknown) =>
      isRuntimeKernelError(e, "WORKLOAD_LOST"),
    );
  });
});

describe("an unreachable engine", () => {
  const nowhere = new DockerBackend({ socketPath: join(tmpdir(), "rk-no-such-engine.sock") });
  const handle: DockerHandle = {
    workloadId: "w",
    runId: "r",
    backend: "docker",
    containerId: "0".repeat(64),
    name: "rk-w-0",
  };

  it("fails start with BACKEND_UNAVAILABLE (retryable)", async () => {
    const error = await nowhere.start(startRequest(kernelId, ["true"]), never()).catch((e: unknown) => e);
    expect(isRuntimeKernelError(error, "BACKEND_UNAVAILABLE")).toBe(true);
    expect((error as { retryable: boolean }).retryable).toBe(true);
  });

  it("is never mistaken for an exit or a loss", async () => {
    await expect(nowhere.exitCode(handle)).rejects.toSatisfy((e: unknown) =>
      isRuntimeKernelError(e, "BACKEND_UNAVAILABLE"),
    );
    await expect(nowhere.kill(handle)).rejects.toSatisfy((e: unknown) =>
      isRuntimeKernelError(e, "BACKEND_UNAVAILABLE"),
    );
    await expect(nowhere.cleanup(handle)).rejects.toSatisfy((e: unknown) =>
      isRuntimeKernelError(e, "CLEANUP_FAILED"),
    );
    await expect(nowhere.discover({ kernelId })).rejects.toSatisfy((e: unknown) =>
      isRuntimeKernelError(e, "BACKEND_UNAVAILABLE"),
    );
  });
});
