/**
 * What the Kubernetes integration tests share: the cluster of the global setup
 * (test/setup/kubernetes.global.ts), start requests, a client for looking (and acting, as a
 * kubelet would) behind the backend's back, and a TCP proxy that can drop the backend's
 * connections to the API server.
 */
import { randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CoreV1Api,
  KubeConfig,
  type V1ContainerState,
  type V1Pod,
  type V1PodStatus,
} from "@kubernetes/client-node";
import { inject } from "vitest";
import { LABELS, type StartRequest } from "../../../src/backends/backend.js";
import { KubernetesBackend, type KubernetesBackendOptions } from "../../../src/backends/kubernetes/index.js";

/** The cluster of the global setup; it failed loudly if there is none. */
export function cluster() {
  const c = inject("kubernetes");
  if (!c?.kubeconfig) throw new Error("no test cluster: the kubernetes project's global setup did not run");
  return c;
}

/** The busybox test image on the node's engine (never pulled); the node tier only. */
export function testImage(): string {
  const image = cluster().image;
  if (!image) throw new Error("the node tier is not running (RK_K8S_TIERS=api?): these tests need a kubelet");
  return image;
}

/** The node's Docker engine, to import images into (never pulled); the node tier only. */
export function nodeDockerHost(): string {
  const host = cluster().dockerHost;
  if (!host)
    throw new Error("the node tier is not running (RK_K8S_TIERS=api?): no Docker engine to import into");
  return host;
}

/** A client of the test cluster for checks and for playing the kubelet. */
export function core(kubeconfig = cluster().kubeconfig): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return kc.makeApiClient(CoreV1Api);
}

export const namespace = () => cluster().namespace;

/**
 * A profile whose Pods no scheduler or kubelet of the cluster ever touches (they name a scheduler
 * that does not exist), so a test can play the kubelet by writing their status.
 */
export const FAKE_NODE_PROFILE = { schedulerName: "rk-test-fake-kubelet", imagePullPolicy: "Never" as const };

/** A backend on the test cluster. */
export function backendFor(options: KubernetesBackendOptions = {}): KubernetesBackend {
  return new KubernetesBackend({
    kubeConfig: cluster().kubeconfig,
    namespace: namespace(),
    reconnectMs: { initial: 50, max: 500 },
    ...options,
  });
}

/** A kernel id unique to one test's run. */
export function testKernelId(name: string): string {
  return `test-${name}-${randomUUID().slice(0, 8)}`;
}

/** A StartRequest for `image` (default: the test image on the node tier, a placeholder on the API tier). */
export function startRequest(
  kernelId: string,
  command: string[],
  overrides: Partial<StartRequest> = {},
): StartRequest {
  const workloadId = overrides.workloadId ?? `w-${randomUUID().slice(0, 8)}`;
  const runId = overrides.runId ?? randomUUID();
  const profile = overrides.profile ?? "test";
  return {
    kernelId,
    workloadId,
    runId,
    profile,
    runnable: { image: cluster().image ?? "runtime-kernel/busybox:test", command },
    env: {},
    ...overrides,
    labels: {
      [LABELS.kernelId]: kernelId,
      [LABELS.workloadId]: workloadId,
      [LABELS.runId]: runId,
      [LABELS.profile]: profile,
      [LABELS.createdAt]: String(Date.now()),
      ...overrides.labels,
    },
  };
}

/** Polls `probe` until it returns something other than undefined/false; bounded, never a fixed sleep. */
export async function eventually<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as T;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Compacts the cluster's etcd at its current revision: every older resourceVersion expires. */
export async function compactEtcd(): Promise<void> {
  const etcd = cluster().etcd;
  if (!etcd) throw new Error("the global setup gave no etcd address");
  const range = await fetch(`${etcd}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: "AA==" }) });
  const revision = ((await range.json()) as { header: { revision: string } }).header.revision;
  const compact = await fetch(`${etcd}/v3/kv/compaction`, {
    method: "POST",
    body: JSON.stringify({ revision, physical: true }),
  });
  if (!compact.ok) throw new Error(`etcd compaction failed: HTTP ${compact.status}`);
}

/** Reads a Pod, or undefined when it does not exist. */
export async function readPod(name: string): Promise<V1Pod | undefined> {
  try {
    return await core().readNamespacedPod({ name, namespace: namespace() });
  } catch (error) {
    if ((error as { code?: number }).code === 404) return undefined;
    throw error;
  }
}

/** Writes a Pod's status, as its kubelet would. */
export async function writeStatus(name: string, status: V1PodStatus): Promise<void> {
  await core().patchNamespacedPodStatus({
    name,
    namespace: namespace(),
    body: [{ op: "add", path: "/status", value: status }],
  });
}

const now = () => new Date();

/** A Pod status whose one container, `main`, is in `state`. */
function mainContainerStatus(phase: string, state: V1ContainerState, ready = false): V1PodStatus {
  return {
    phase,
    containerStatuses: [{ name: "main", image: "x", imageID: "", ready, restartCount: 0, state }],
  };
}

/** Status of a running main container. */
export function runningStatus(): V1PodStatus {
  return mainContainerStatus("Running", { running: { startedAt: now() } }, true);
}

/** Status of a Pod whose main container terminated with `exitCode` (and `reason`). */
export function terminatedStatus(exitCode: number, reason?: string): V1PodStatus {
  return mainContainerStatus(exitCode === 0 ? "Succeeded" : "Failed", {
    terminated: { exitCode, startedAt: now(), finishedAt: now(), ...(reason ? { reason } : {}) },
  });
}

/** Status of a Pending Pod whose main container waits for `reason` (`message`). */
export function waitingStatus(reason: string, message: string): V1PodStatus {
  return mainContainerStatus("Pending", { waiting: { reason, message } });
}

/**
 * A TCP proxy in front of the API server: the backend talks through it, the test can drop every
 * connection (as a network failure would) or refuse new ones for a while.
 */
export class ApiProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private refusing = false;
  port = 0;
  kubeconfig = "";

  async start(): Promise<this> {
    const target = new URL(cluster().server);
    this.server = createServer((client) => {
      if (this.refusing) {
        client.destroy();
        return;
      }
      const upstream = connect(Number(target.port), target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => undefined);
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    const address = this.server.address();
    this.port = typeof address === "object" && address ? address.port : 0;
    const original = readFileSync(cluster().kubeconfig, "utf8");
    this.kubeconfig = join(tmpdir(), `rk-k8s-proxy-${this.port}.kubeconfig`);
    writeFileSync(this.kubeconfig, original.replace(/server: .*/, `server: https://127.0.0.1:${this.port}`));
    return this;
  }

  /** Drops every open connection, as a failing network would. */
  dropAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  /** While refusing, new connections are closed at once. */
  refuse(on: boolean): void {
    this.refusing = on;
    if (on) this.dropAll();
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
