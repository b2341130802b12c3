/**
 * KubernetesBackend on the node tier: real Pods scheduled by kube-scheduler and run by a kubelet
 * on the Docker engine, with real exit codes, signals, logs and Secrets; and the kernel on top.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ExitStatus, LogEntry } from "../../../src/backends/backend.js";
import type { KubernetesBackend, KubernetesHandle } from "../../../src/backends/kubernetes/index.js";
import { isRuntimeKernelError } from "../../../src/errors.js";
import { createRuntimeKernel } from "../../../src/index.js";
import {
  backendFor,
  core,
  eventually,
  namespace,
  readPod,
  startRequest,
  testImage,
  testKernelId,
} from "./support.js";

const signal = () => new AbortController().signal;

async function collect(iterable: AsyncIterable<LogEntry>): Promise<string[]> {
  const lines: string[] = [];
  for await (const entry of iterable) lines.push(entry.line);
  return lines;
}

describe("KubernetesBackend on the node tier (real kubelet)", () => {
  const kernelId = testKernelId("node");
  let backend: KubernetesBackend;

  beforeAll(() => {
    testImage(); // fails loudly when the node tier is not running
    backend = backendFor({ profiles: { test: { imagePullPolicy: "Never" } }, startTimeoutMs: 60_000 });
  });
  afterAll(async () => {
    for (const d of await backend.discover({ kernelId })) {
      await backend.kill(d.handle);
      await backend.cleanup(d.handle);
    }
    await backend.close();
  });

  const exitPushed = (handle: KubernetesHandle) =>
    new Promise<ExitStatus>((resolve) => backend.watchExit(handle, resolve));

  it("runs a real Pod to its real exit code, and its logs come back", async () => {
    const handle = await backend.start(startRequest(kernelId, ["sh", "-c", "echo one; echo two; exit 7"]), {
      signal: signal(),
    });
    expect(await exitPushed(handle)).toEqual({ exitCode: 7 });
    expect(await collect(backend.logs(handle, {}))).toEqual(["one", "two"]);
    expect(await collect(backend.logs(handle, { tail: 1 }))).toEqual(["two"]);
    await backend.cleanup(handle);
    expect(await readPod(handle.pod)).toBeUndefined();
  });

  it("follows the logs of a running Pod until it ends", async () => {
    const handle = await backend.start(
      startRequest(kernelId, ["sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.3; done"]),
      { signal: signal() },
    );
    expect(await collect(backend.logs(handle, { follow: true }))).toEqual(["line 1", "line 2", "line 3"]);
    expect(await exitPushed(handle)).toEqual({ exitCode: 0 });
    await backend.cleanup(handle);
  });

  it("passes the environment through the per-run Secret, which goes with the Pod", async () => {
    const value = "s3cr3t-value-for-the-container";
    const handle = await backend.start(
      startRequest(kernelId, ["sh", "-c", 'echo "token=$API_TOKEN"; id -u'], { env: { API_TOKEN: value } }),
      {
        signal: signal(),
      },
    );
    expect(await exitPushed(handle)).toEqual({ exitCode: 0 });
    expect(await collect(backend.logs(handle, {}))).toEqual([`token=${value}`, "65532"]);
    expect(JSON.stringify(await readPod(handle.pod))).not.toContain(value);
    await backend.cleanup(handle);
    await expect(
      core().readNamespacedSecret({ name: handle.secret as string, namespace: namespace() }),
    ).rejects.toMatchObject({ code: 404 });
  });

  it("terminate stops it gracefully (SIGTERM reaches the workload), kill ends it with 137", async () => {
    const graceful = await backend.start(
      startRequest(kernelId, ["sh", "-c", "trap 'exit 0' TERM; echo ready; sleep 600 & wait"]),
      { signal: signal() },
    );
    const stubborn = await backend.start(
      startRequest(kernelId, ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"]),
      { signal: signal() },
    );
    // A signal sent before a shell installed its trap would be lost: wait for its line.
    for (const h of [graceful, stubborn])
      for await (const entry of backend.logs(h, { follow: true, signal: AbortSignal.timeout(30_000) }))
        if (entry.line === "ready") break;
    const g = exitPushed(graceful);
    const s = exitPushed(stubborn);
    await backend.terminate(graceful, { graceMs: 30_000 });
    await backend.terminate(stubborn, { graceMs: 30_000 });
    expect(await g).toEqual({ exitCode: 0 });
    expect(await backend.exitCode(stubborn)).toBeNull();
    await backend.kill(stubborn);
    expect(await s).toEqual({ exitCode: 137, signal: "SIGKILL" });
    await backend.cleanup(graceful);
    await backend.cleanup(stubborn);
  });

  it("mounts each of a mount set as a subPath of its root's volume, read-only where asked, and nothing beside", async () => {
    const root = mkdtempSync(join(tmpdir(), "rk-k8s-mounts-"));
    try {
      for (const name of ["data", "out", "other"]) mkdirSync(join(root, name));
      chmodSync(root, 0o755);
      chmodSync(join(root, "out"), 0o777);
      writeFileSync(join(root, "data", "in.txt"), "input\n");
      writeFileSync(join(root, "other", "secret.txt"), "not yours\n");
      const script = [
        "cat /data/in.txt",
        "touch /data/x 2>/dev/null && echo data-rw || echo data-ro",
        "echo written > /out/result.txt && echo out-rw",
        "cat /data/../other/secret.txt /out/../other/secret.txt 2>/dev/null || echo no-secret",
      ].join("; ");
      const handle = await backend.start(
        startRequest(kernelId, ["sh", "-c", script], {
          mounts: [
            { source: join(root, "data"), target: "/data", readOnly: true, root },
            { source: join(root, "out"), target: "/out", readOnly: false, root },
          ],
        }),
        { signal: signal() },
      );
      expect(await exitPushed(handle)).toEqual({ exitCode: 0 });
      expect(await collect(backend.logs(handle, {}))).toEqual(["input", "data-ro", "out-rw", "no-secret"]);
      expect(readFileSync(join(root, "out", "result.txt"), "utf8")).toBe("written\n");
      await backend.cleanup(handle);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("a Pod whose image is missing fails its start with the kubelet's reason", async () => {
    const request = startRequest(kernelId, ["true"]);
    request.runnable.image = "runtime-kernel/not-there:1";
    await expect(backend.start(request, { signal: signal() })).rejects.toThrow(/ErrImageNeverPull/);
  });

  it("an unschedulable Pod fails its start after the start timeout with the scheduler's reason", async () => {
    const b = backendFor({
      profiles: {
        test: { imagePullPolicy: "Never", nodeSelector: { "runtime-kernel.dev/no-such": "node" } },
      },
      startTimeoutMs: 5_000,
    });
    try {
      const error = await b.start(startRequest(kernelId, ["true"]), { signal: signal() }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isRuntimeKernelError(error, "START_FAILED")).toBe(true);
      expect((error as Error).message).toMatch(
        /Unschedulable: 0\/1 nodes are available: 1 node\(s\) didn't match/,
      );
    } finally {
      await b.close();
    }
  });

  it("under the kernel: create, stop, destroy; destroy resolves once the Pod and its Secret are gone", async () => {
    const kernel = createRuntimeKernel({
      backend: backendFor({ profiles: { agent: { imagePullPolicy: "Never" } } }),
      kernelId: testKernelId("kernel"),
      profiles: {
        agent: {
          runnable: { image: testImage(), command: ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"] },
          graceMs: 20_000,
        },
      },
    });
    try {
      const created = await kernel.create({ workloadId: "agent-1", profile: "agent", env: { KEY: "v" } });
      expect(created.state).toBe("running");
      const stopped = await kernel.stop("agent-1");
      expect(stopped).toMatchObject({ state: "stopped", stopReason: "requested", exitCode: 0 });
      await kernel.destroy("agent-1");
      const pods = await core().listNamespacedPod({
        namespace: namespace(),
        labelSelector: "runtime-kernel.dev/workload-id=agent-1",
      });
      expect(pods.items).toEqual([]);
    } finally {
      await kernel.shutdown();
    }
  });

  it("recovery: a new kernel adopts the running Pod and reports the one that exited meanwhile", async () => {
    const id = testKernelId("recover");
    const profiles = {
      agent: {
        runnable: { image: testImage(), command: ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"] },
      },
      short: { runnable: { image: testImage(), command: ["sh", "-c", "sleep 2; exit 3"] } },
    };
    const backendProfiles = {
      profiles: {
        agent: { imagePullPolicy: "Never" as const },
        short: { imagePullPolicy: "Never" as const },
      },
    };
    const first = createRuntimeKernel({ backend: backendFor(backendProfiles), kernelId: id, profiles });
    await first.create({ workloadId: "stays", profile: "agent" });
    await first.create({ workloadId: "exits", profile: "short" });
    await first.shutdown({ leaveRunning: true });
    const pod = await core().listNamespacedPod({
      namespace: namespace(),
      labelSelector: "runtime-kernel.dev/workload-id=exits",
    });
    const exitsPod = pod.items[0]?.metadata?.name as string;
    // Wait, behind every kernel's back, for the short one to exit.
    await eventually(async () => (await readPod(exitsPod))?.status?.phase === "Failed");
    const second = createRuntimeKernel({ backend: backendFor(backendProfiles), kernelId: id, profiles });
    try {
      const report = await second.recover();
      expect(report.adopted.map((s) => s.workloadId)).toEqual(["stays"]);
      expect(report.exited.map((s) => [s.workloadId, s.exitCode])).toEqual([["exits", 3]]);
      expect(second.get("stays")?.state).toBe("running");
    } finally {
      await second.shutdown();
    }
    const left = await core().listNamespacedPod({
      namespace: namespace(),
      labelSelector: `runtime-kernel.dev/kernel-id=${id}`,
    });
    expect(left.items).toEqual([]);
  });
});
