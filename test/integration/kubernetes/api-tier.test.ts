/**
 * KubernetesBackend against a real API server, the test playing the kubelet: its Pods name a
 * scheduler that does not exist, so nothing but the test ever writes their status.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { ExitStatus } from "../../../src/backends/backend.js";
import { isStatus } from "../../../src/backends/kubernetes/api.js";
import type { KubernetesBackend, KubernetesHandle } from "../../../src/backends/kubernetes/index.js";
import { buildPodManifests } from "../../../src/backends/kubernetes/pod-spec.js";
import { isRuntimeKernelError } from "../../../src/errors.js";
import {
  ApiProxy,
  backendFor,
  compactEtcd,
  core,
  eventually,
  FAKE_NODE_PROFILE,
  namespace,
  readPod,
  runningStatus,
  startRequest,
  terminatedStatus,
  testKernelId,
  waitingStatus,
  writeStatus,
} from "./support.js";

const signal = () => new AbortController().signal;

/** The name of the Pod a run's start created, once it exists. */
const podOf = (request: { runId: string }) =>
  eventually(
    async () =>
      (
        await core().listNamespacedPod({
          namespace: namespace(),
          labelSelector: `runtime-kernel.dev/run-id=${request.runId}`,
        })
      ).items[0]?.metadata?.name,
  );

/** Starts a run and plays the kubelet until the start resolves (the Pod reported Running). */
async function startRunning(backend: KubernetesBackend, kernelId: string, env: Record<string, string> = {}) {
  const request = startRequest(kernelId, ["sleep", "600"], { env });
  const starting = backend.start(request, { signal: signal() });
  const name = await podOf(request);
  await writeStatus(name, runningStatus());
  const handle = await starting;
  return { handle, request };
}

const exitPushed = (backend: KubernetesBackend, handle: KubernetesHandle) =>
  new Promise<ExitStatus>((resolve) => backend.watchExit(handle, resolve));

describe("KubernetesBackend on the API tier (the test plays the kubelet)", () => {
  const kernelId = testKernelId("api");
  let backend: KubernetesBackend;

  beforeAll(() => {
    backend = backendFor({ profiles: { test: FAKE_NODE_PROFILE }, startTimeoutMs: 3_000 });
  });
  afterAll(async () => {
    for (const d of await backend.discover({ kernelId })) await backend.cleanup(d.handle);
    await backend.close();
  });

  describe("the Pod it creates", () => {
    it("is a bare Pod named <prefix>-<workload>-<run hash>, with full ids in labels and annotations", async () => {
      const { handle, request } = await startRunning(backend, kernelId);
      const pod = await readPod(handle.pod);
      expect(handle.pod).toMatch(new RegExp(`^rk-${request.workloadId}-[0-9a-f]{10}$`));
      expect(pod?.spec?.restartPolicy).toBe("Never");
      expect(pod?.metadata?.ownerReferences ?? []).toEqual([]);
      expect(pod?.metadata?.labels).toMatchObject({
        "runtime-kernel.dev/kernel-id": kernelId,
        "runtime-kernel.dev/workload-id": request.workloadId,
        "runtime-kernel.dev/run-id": request.runId,
        "runtime-kernel.dev/profile": "test",
      });
      expect(pod?.metadata?.annotations?.["runtime-kernel.dev/created-at"]).toBe(
        request.labels["runtime-kernel.dev/created-at"],
      );
    });

    it("runs with the safe security context and no service account token", async () => {
      const { handle } = await startRunning(backend, kernelId);
      const pod = await readPod(handle.pod);
      expect(pod?.spec?.automountServiceAccountToken).toBe(false);
      expect(pod?.spec?.containers[0]?.securityContext).toMatchObject({
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
      });
    });

    it("gets its environment from a per-run Secret owned by the Pod: no value in the Pod spec, the handle or events", async () => {
      const secretValue = "tok-3f9a1c-never-in-the-spec";
      const { handle } = await startRunning(backend, kernelId, { API_TOKEN: secretValue, MODE: "fast" });
      const pod = await readPod(handle.pod);
      expect(JSON.stringify(pod)).not.toContain(secretValue);
      expect(JSON.stringify(handle)).not.toContain(secretValue);
      expect(pod?.spec?.containers[0]?.env).toContainEqual({
        name: "API_TOKEN",
        valueFrom: { secretKeyRef: { name: handle.secret, key: "API_TOKEN", optional: false } },
      });
      const secret = await core().readNamespacedSecret({
        name: handle.secret as string,
        namespace: namespace(),
      });
      expect(Buffer.from(secret.data?.API_TOKEN ?? "", "base64").toString()).toBe(secretValue);
      expect(secret.metadata?.ownerReferences?.[0]).toMatchObject({
        kind: "Pod",
        name: handle.pod,
        uid: handle.uid,
      });
      const events = await core().listNamespacedEvent({ namespace: namespace() });
      expect(JSON.stringify(events)).not.toContain(secretValue);
      await backend.kill(handle);
      await backend.cleanup(handle);
      await expect(
        core().readNamespacedSecret({ name: handle.secret as string, namespace: namespace() }),
      ).rejects.toMatchObject({ code: 404 });
    });

    it("takes resources as requests and limits", async () => {
      const request = startRequest(kernelId, ["true"], { resources: { cpu: 0.5, memoryMb: 64 } });
      const starting = backend.start(request, { signal: signal() });
      starting.catch(() => undefined); // handled below; the rejection may come before the expect
      const name = await podOf(request);
      const pod = await readPod(name);
      expect(pod?.spec?.containers[0]?.resources).toEqual({
        requests: { cpu: "500m", memory: "64Mi" },
        limits: { cpu: "500m", memory: "64Mi" },
      });
      await writeStatus(name, terminatedStatus(0));
      await starting;
    });
  });

  describe("phase to exit", () => {
    it("Running is null, Succeeded is 0", async () => {
      const { handle } = await startRunning(backend, kernelId);
      expect(await backend.exitCode(handle)).toBeNull();
      const pushed = exitPushed(backend, handle);
      await writeStatus(handle.pod, terminatedStatus(0));
      expect(await pushed).toEqual({ exitCode: 0 });
      expect(await backend.exitCode(handle)).toBe(0);
    });

    it("Failed is the container's exit code, with the signal's name above 128", async () => {
      const a = await startRunning(backend, kernelId);
      const b = await startRunning(backend, kernelId);
      const pa = exitPushed(backend, a.handle);
      const pb = exitPushed(backend, b.handle);
      await writeStatus(a.handle.pod, terminatedStatus(3));
      await writeStatus(b.handle.pod, terminatedStatus(143));
      expect(await pa).toEqual({ exitCode: 3 });
      expect(await pb).toEqual({ exitCode: 143, signal: "SIGTERM" });
    });

    it("OOMKilled is reported as oomKilled", async () => {
      const { handle } = await startRunning(backend, kernelId);
      const pushed = exitPushed(backend, handle);
      await writeStatus(handle.pod, terminatedStatus(137, "OOMKilled"));
      expect(await pushed).toEqual({ exitCode: 137, signal: "SIGKILL", oomKilled: true });
    });

    it("a Pod deleted behind the kernel's back is lost", async () => {
      const { handle } = await startRunning(backend, kernelId);
      const pushed = exitPushed(backend, handle);
      await core().deleteNamespacedPod({ name: handle.pod, namespace: namespace(), gracePeriodSeconds: 0 });
      expect(await pushed).toEqual({ exitCode: null, lost: true });
      await expect(backend.exitCode(handle)).rejects.toSatisfy((e: unknown) =>
        isRuntimeKernelError(e, "WORKLOAD_LOST"),
      );
      await backend.cleanup(handle);
    });

    it("a Failed Pod whose container never ran (evicted) is lost, not a made-up exit code", async () => {
      const { handle } = await startRunning(backend, kernelId);
      const pushed = exitPushed(backend, handle);
      await writeStatus(handle.pod, {
        phase: "Failed",
        reason: "Evicted",
        message: "The node was low on memory.",
      });
      expect(await pushed).toEqual({ exitCode: null, lost: true });
    });

    it("an API error is an error, never an exit", async () => {
      const { handle } = await startRunning(backend, kernelId);
      const proxy = await new ApiProxy().start();
      const cut = backendFor({ kubeConfig: proxy.kubeconfig, profiles: { test: FAKE_NODE_PROFILE } });
      await proxy.close();
      await expect(cut.exitCode(handle)).rejects.toSatisfy((e: unknown) =>
        isRuntimeKernelError(e, "BACKEND_UNAVAILABLE"),
      );
      await expect(cut.terminate(handle, { graceMs: 1000 })).rejects.toSatisfy((e: unknown) =>
        isRuntimeKernelError(e, "BACKEND_UNAVAILABLE"),
      );
      await cut.close();
      expect(await backend.exitCode(handle)).toBeNull();
    });
  });

  describe("start", () => {
    it("fails after the start timeout with the scheduler's reason, and leaves nothing behind", async () => {
      const request = startRequest(kernelId, ["sleep", "1"], { env: { X: "1" } });
      const starting = backend.start(request, { signal: signal() });
      starting.catch(() => undefined); // handled below; the rejection may come before the expect
      const name = await podOf(request);
      await writeStatus(name, {
        phase: "Pending",
        conditions: [
          {
            type: "PodScheduled",
            status: "False",
            reason: "Unschedulable",
            message: "0/3 nodes are available: 3 Insufficient memory.",
          },
        ],
      });
      const error = await starting.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isRuntimeKernelError(error, "START_FAILED")).toBe(true);
      expect((error as Error).message).toContain("0/3 nodes are available: 3 Insufficient memory.");
      expect(await readPod(name)).toBeUndefined();
      await expect(core().readNamespacedSecret({ name, namespace: namespace() })).rejects.toMatchObject({
        code: 404,
      });
    });

    it("fails at once when the kubelet says the image cannot be had (pull policy Never)", async () => {
      const request = startRequest(kernelId, ["true"]);
      const starting = backend.start(request, { signal: signal() });
      starting.catch(() => undefined); // handled below; the rejection may come before the expect
      const name = await podOf(request);
      await writeStatus(
        name,
        waitingStatus(
          "ErrImageNeverPull",
          'Container image "nope:1" is not present with pull policy of Never',
        ),
      );
      await expect(starting).rejects.toThrow(/ErrImageNeverPull: Container image "nope:1" is not present/);
    });

    it("fails when the Pod is deleted before it started", async () => {
      const request = startRequest(kernelId, ["true"]);
      const starting = backend.start(request, { signal: signal() });
      starting.catch(() => undefined); // handled below; the rejection may come before the expect
      const name = await podOf(request);
      await core().deleteNamespacedPod({ name, namespace: namespace(), gracePeriodSeconds: 0 });
      await expect(starting).rejects.toSatisfy((e: unknown) => isRuntimeKernelError(e, "START_FAILED"));
    });

    it("aborted while Pending rejects with START_ABORTED and deletes the Pod and its Secret", async () => {
      // Its own backend, with a start timeout far beyond the abort: under load, the shared
      // backend's 3 s timeout could fire first and turn the abort into a timeout.
      const patient = backendFor({ profiles: { test: FAKE_NODE_PROFILE }, startTimeoutMs: 120_000 });
      onTestFinished(() => patient.close());
      const controller = new AbortController();
      const request = startRequest(kernelId, ["true"], { env: { K: "v" } });
      const starting = patient.start(request, { signal: controller.signal });
      starting.catch(() => undefined); // handled below; the rejection may come before the expect
      const name = await podOf(request);
      controller.abort();
      await expect(starting).rejects.toSatisfy((e: unknown) => isRuntimeKernelError(e, "START_ABORTED"));
      expect(await readPod(name)).toBeUndefined();
      await expect(core().readNamespacedSecret({ name, namespace: namespace() })).rejects.toMatchObject({
        code: 404,
      });
    });

    it("refuses a request without an image, naming the field", async () => {
      const request = startRequest(kernelId, ["true"]);
      request.runnable = { command: ["true"] };
      await expect(backend.start(request, { signal: signal() })).rejects.toThrow(/runnable\.image/);
    });
  });

  describe("terminate, kill, cleanup", () => {
    it("a burst of terminates larger than the connection pool all succeed", async () => {
      // More calls than the pool's 32 connections: before calls waited their turn outside
      // the pool, most of these deletes failed with a false "Premature close" (node-fetch#1767).
      const k = testKernelId("burst");
      const runs = await Promise.all(Array.from({ length: 80 }, () => startRunning(backend, k)));
      const results = await Promise.allSettled(
        runs.map(({ handle }) => backend.terminate(handle, { graceMs: 30_000 })),
      );
      expect(results.filter((r) => r.status === "rejected")).toEqual([]);
      await Promise.all(runs.map(({ handle }) => backend.cleanup(handle)));
    });

    it("terminate deletes with the grace period; the exit the kubelet writes meanwhile is reported", async () => {
      const { handle } = await startRunning(backend, kernelId);
      // Bound to a node, a Pod's graceful delete waits for its kubelet.
      await core().createNamespacedPodBinding({
        name: handle.pod,
        namespace: namespace(),
        body: { metadata: { name: handle.pod }, target: { kind: "Node", name: "rk-fake-node" } },
      });
      const pushed = exitPushed(backend, handle);
      await backend.terminate(handle, { graceMs: 30_000 });
      const pod = await readPod(handle.pod);
      expect(pod?.metadata?.deletionTimestamp).toBeDefined();
      expect(pod?.metadata?.deletionGracePeriodSeconds).toBe(30);
      expect(await backend.exitCode(handle)).toBeNull();
      await writeStatus(handle.pod, { ...terminatedStatus(0), phase: "Running" });
      expect(await pushed).toEqual({ exitCode: 0 });
      await backend.cleanup(handle);
      expect(await readPod(handle.pod)).toBeUndefined();
    });

    it("kill deletes with grace 0: the Pod is gone and the exit is 137", async () => {
      const { handle } = await startRunning(backend, kernelId);
      const pushed = exitPushed(backend, handle);
      await backend.kill(handle);
      expect(await pushed).toEqual({ exitCode: 137, signal: "SIGKILL" });
      expect(await readPod(handle.pod)).toBeUndefined();
    });

    it("cleanup ignores what is already gone and resolves only once the Pod is gone", async () => {
      const { handle } = await startRunning(backend, kernelId, { A: "1" });
      await core().deleteNamespacedSecret({ name: handle.secret as string, namespace: namespace() });
      await backend.cleanup(handle);
      expect(await readPod(handle.pod)).toBeUndefined();
      await backend.cleanup(handle);
      await backend.terminate(handle, { graceMs: 1000 });
      await backend.kill(handle);
    });
  });

  describe("the shared watch", () => {
    it("serves every workload from one watch: exitCode of 30 running Pods makes no request", async () => {
      const handles = [];
      for (let i = 0; i < 30; i++) handles.push((await startRunning(backend, kernelId)).handle);
      const before = backend.stats();
      for (const h of handles) expect(await backend.exitCode(h)).toBeNull();
      const after = backend.stats();
      expect(after.requests.total).toBe(before.requests.total);
      expect(after.requests.byKind.watch).toBe(before.requests.byKind.watch);
      for (const h of handles) await backend.kill(h);
    });

    it("resumes from its resourceVersion after a dropped connection, without relisting", async () => {
      const proxy = await new ApiProxy().start();
      const b = backendFor({ kubeConfig: proxy.kubeconfig, profiles: { test: FAKE_NODE_PROFILE } });
      try {
        const { handle } = await startRunning(b, kernelId);
        const pushed = exitPushed(b, handle);
        const lists = b.stats().watch.lists;
        proxy.dropAll();
        await writeStatus(handle.pod, terminatedStatus(5));
        expect(await pushed).toEqual({ exitCode: 5 });
        expect(b.stats().watch.dropped).toBeGreaterThanOrEqual(1);
        expect(b.stats().watch.lists).toBe(lists);
      } finally {
        await b.close();
        await proxy.close();
      }
    });

    it("reconnects after refused connections and reports what happened meanwhile", async () => {
      const proxy = await new ApiProxy().start();
      const b = backendFor({ kubeConfig: proxy.kubeconfig, profiles: { test: FAKE_NODE_PROFILE } });
      try {
        const { handle } = await startRunning(b, kernelId);
        const deleted = await startRunning(b, kernelId);
        const pushed = exitPushed(b, handle);
        const pushedLost = exitPushed(b, deleted.handle);
        proxy.refuse(true);
        await writeStatus(handle.pod, terminatedStatus(9));
        await core().deleteNamespacedPod({
          name: deleted.handle.pod,
          namespace: namespace(),
          gracePeriodSeconds: 0,
        });
        // More Pod events than the API server's watch cache keeps (100): the old version expires.
        const filler = startRequest(`${kernelId}-filler`, ["true"]);
        const other = backendFor({ profiles: { test: FAKE_NODE_PROFILE } });
        const fillerStart = other.start(filler, { signal: signal() });
        const fillerName = await podOf(filler);
        for (let i = 0; i < 150; i++)
          await core().patchNamespacedPod({
            name: fillerName,
            namespace: namespace(),
            body: [{ op: "add", path: "/metadata/annotations/n", value: String(i) }],
          });
        await writeStatus(fillerName, terminatedStatus(0));
        const fillerHandle = await fillerStart;
        await other.cleanup(fillerHandle);
        await other.close();
        proxy.refuse(false);
        expect(await pushed).toEqual({ exitCode: 9 });
        expect(await pushedLost).toEqual({ exitCode: null, lost: true });
        expect(b.stats().watch.dropped).toBeGreaterThanOrEqual(1);
      } finally {
        await b.close();
        await proxy.close();
      }
    });
  });

  it("relists when the resourceVersion it resumes from was compacted away (410 Gone)", async () => {
    const proxy = await new ApiProxy().start();
    const b = backendFor({ kubeConfig: proxy.kubeconfig, profiles: { test: FAKE_NODE_PROFILE } });
    try {
      const { handle } = await startRunning(b, kernelId);
      const pushed = exitPushed(b, handle);
      proxy.refuse(true);
      await writeStatus(handle.pod, terminatedStatus(6));
      // One more write, then etcd forgets every revision before it: the watch cannot resume.
      const cm = `rk-test-${handle.pod}`;
      await core().createNamespacedConfigMap({ namespace: namespace(), body: { metadata: { name: cm } } });
      await core().deleteNamespacedConfigMap({ name: cm, namespace: namespace() });
      await compactEtcd();
      proxy.refuse(false);
      expect(await pushed).toEqual({ exitCode: 6 });
      expect(b.stats().watch.expired).toBeGreaterThanOrEqual(1);
    } finally {
      await b.close();
      await proxy.close();
    }
  });

  describe("discover", () => {
    it("lists this kernel's Pods by label, with exits that happened meanwhile", async () => {
      const k = testKernelId("discover");
      const running = await startRunning(backend, k);
      const exited = await startRunning(backend, k);
      await writeStatus(exited.handle.pod, terminatedStatus(4));
      const fresh = backendFor({ profiles: { test: FAKE_NODE_PROFILE } });
      try {
        const found = await fresh.discover({ kernelId: k });
        const byRun = new Map(found.map((f) => [f.handle.runId, f]));
        expect(byRun.size).toBe(2);
        expect(byRun.get(running.request.runId)?.exit).toBeNull();
        expect(byRun.get(running.request.runId)?.handle).toEqual(running.handle);
        expect(byRun.get(exited.request.runId)?.exit).toEqual({ exitCode: 4 });
        expect(byRun.get(exited.request.runId)?.labels["runtime-kernel.dev/workload-id"]).toBe(
          exited.request.workloadId,
        );
        for (const f of found) await fresh.cleanup(f.handle);
        expect(await fresh.discover({ kernelId: k })).toEqual([]);
      } finally {
        await fresh.close();
      }
    });

    it("with reapOrphanSecrets, deletes the Secrets no Pod goes with (a kernel killed between the two creates)", async () => {
      const k = testKernelId("orphans");
      const live = await startRunning(backend, k, { TOKEN: "live-secret-value" });
      // What a kernel killed right after creating a run's Secret leaves behind.
      const { secret: orphan } = buildPodManifests(
        startRequest(k, ["true"], { env: { TOKEN: "orphan-value" } }),
        {
          namespace: namespace(),
          namePrefix: "rk",
          profile: FAKE_NODE_PROFILE,
        },
      );
      if (!orphan) throw new Error("a run with env has a Secret");
      await core().createNamespacedSecret({ namespace: namespace(), body: orphan });
      const secretExists = (name: string) =>
        core()
          .readNamespacedSecret({ name, namespace: namespace() })
          .then(
            () => true,
            (error) => (isStatus(error, 404) ? false : Promise.reject(error)),
          );

      const plain = backendFor({ profiles: { test: FAKE_NODE_PROFILE } });
      const reaping = backendFor({ profiles: { test: FAKE_NODE_PROFILE }, reapOrphanSecrets: true });
      try {
        // Off by default: finding them needs `list` on Secrets, which the documented Role lacks.
        await plain.discover({ kernelId: k });
        expect(await secretExists(orphan.metadata.name)).toBe(true);

        const found = await reaping.discover({ kernelId: k });
        expect(found.map((f) => f.handle.runId)).toEqual([live.request.runId]);
        expect(await secretExists(orphan.metadata.name)).toBe(false);
        expect(await secretExists(live.handle.secret as string)).toBe(true);
        await reaping.cleanup(live.handle);
      } finally {
        await plain.close();
        await reaping.close();
      }
    });
  });
});
