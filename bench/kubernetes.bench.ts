/**
 * 500 workloads through the kernel on KubernetesBackend (API tier: etcd + kube-apiserver, the
 * bench playing the kubelet by writing each Pod's status), created, reported running, stopped
 * and destroyed; beside the raw floor measured in the same run: the same Pod bodies created,
 * watched through one watch and deleted directly with @kubernetes/client-node. Rounds alternate
 * raw and kernel; medians and their ratio are printed as one JSON line. Target: kernel/raw <= 1.3.
 *
 * Then the idle cost: API requests per minute made by the backend with 100, 250 and 500 running
 * Pods (target: flat, O(1) in the number of Pods, since exits come from one shared watch).
 *
 *   node --expose-gc --import tsx bench/kubernetes.bench.ts
 *
 * Uses the cluster of test/setup/kubernetes.sh (starting its API tier if none runs, and stopping
 * it afterwards if it started it).
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CoreV1Api, KubeConfig, type V1Pod, Watch } from "@kubernetes/client-node";
import { LABELS, type StartRequest } from "../src/backends/backend.js";
import { KubernetesBackend } from "../src/backends/kubernetes/index.js";
import { buildPodManifests } from "../src/backends/kubernetes/pod-spec.js";
import { createRuntimeKernel } from "../src/index.js";

const N = Number(process.env.RK_BENCH_PODS ?? 500);
const ROUNDS = Number(process.env.RK_BENCH_ROUNDS ?? 2);
const CONCURRENCY = 32; // the kernel's default maxConcurrentStarts; the floor uses the same
const WINDOW_MS = Number(process.env.RK_BENCH_WINDOW_MS ?? 10_000);
const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), "../test/setup/kubernetes.sh");
const SCHEDULER = "rk-bench-fake-kubelet";
const IMAGE = "runtime-kernel/busybox:test";

function cluster(): { kubeconfig: string; namespace: string; stop?: () => void } {
  const running = (() => {
    try {
      return execFileSync("bash", [SCRIPT, "env"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    } catch {
      return undefined;
    }
  })();
  const out =
    running ??
    execFileSync("bash", [SCRIPT, "start-api"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const kubeconfig = /^RK_K8S_KUBECONFIG=(.+)$/m.exec(out)?.[1];
  const namespace = /^RK_K8S_NAMESPACE=(.+)$/m.exec(out)?.[1] ?? "default";
  if (!kubeconfig) throw new Error(`kubernetes.sh printed no kubeconfig:\n${out}`);
  return running
    ? { kubeconfig, namespace }
    : { kubeconfig, namespace, stop: () => execFileSync("bash", [SCRIPT, "stop"], { stdio: "ignore" }) };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const round1 = (x: number) => Math.round(x * 10) / 10;

async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

function client(kubeconfig: string): { kc: KubeConfig; core: CoreV1Api } {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return { kc, core: kc.makeApiClient(CoreV1Api) };
}

/** Plays the kubelet for every bench Pod: writes `Running` once each appears. Not counted in either side. */
async function fakeKubelet(kubeconfig: string, namespace: string): Promise<() => void> {
  const { kc, core } = client(kubeconfig);
  const done = new Set<string>();
  const controller = await new Watch(kc).watch(
    `/api/v1/namespaces/${namespace}/pods`,
    { labelSelector: "rk-bench=1" },
    (type, pod: V1Pod) => {
      const name = pod.metadata?.name;
      if (type !== "ADDED" || !name || done.has(name) || pod.metadata?.deletionTimestamp) return;
      done.add(name);
      core
        .patchNamespacedPodStatus({
          name,
          namespace,
          body: [
            {
              op: "add",
              path: "/status",
              value: {
                phase: "Running",
                containerStatuses: [
                  {
                    name: "main",
                    image: IMAGE,
                    imageID: "",
                    ready: true,
                    restartCount: 0,
                    state: { running: { startedAt: new Date() } },
                  },
                ],
              },
            },
          ],
        })
        .catch(() => undefined);
    },
    () => undefined,
  );
  return () => controller.abort();
}

function requestFor(kernelId: string, i: number): StartRequest {
  const workloadId = `bench-${i}`;
  const runId = randomUUID();
  return {
    kernelId,
    workloadId,
    runId,
    profile: "bench",
    runnable: { image: IMAGE, command: ["sleep", "600"] },
    env: {},
    labels: {
      [LABELS.kernelId]: kernelId,
      [LABELS.workloadId]: workloadId,
      [LABELS.runId]: runId,
      [LABELS.profile]: "bench",
      [LABELS.createdAt]: String(Date.now()),
    },
  };
}

interface Sample {
  runningMs: number;
  destroyedMs: number;
  requests?: number;
  byKind?: Record<string, number>;
}

/** The floor: create each Pod, see it Running through one watch, delete it, see it gone. */
async function rawRound(kubeconfig: string, namespace: string): Promise<Sample> {
  const { kc, core } = client(kubeconfig);
  const kernelId = `bench-raw-${randomUUID().slice(0, 8)}`;
  const pods = Array.from(
    { length: N },
    (_, i) =>
      buildPodManifests(requestFor(kernelId, i), {
        namespace,
        namePrefix: "rk",
        profile: { schedulerName: SCHEDULER, labels: { "rk-bench": "1" } },
      }).pod,
  );
  const running = new Set<string>();
  const gone = new Set<string>();
  let wake: (() => void) | undefined;
  const list = await core.listNamespacedPod({ namespace, labelSelector: `${LABELS.kernelId}=${kernelId}` });
  const watch = await new Watch(kc).watch(
    `/api/v1/namespaces/${namespace}/pods`,
    { labelSelector: `${LABELS.kernelId}=${kernelId}`, resourceVersion: list.metadata?.resourceVersion },
    (type, pod: V1Pod) => {
      const name = pod.metadata?.name as string;
      if (type === "DELETED") gone.add(name);
      else if (pod.status?.phase === "Running") running.add(name);
      wake?.();
    },
    () => undefined,
  );
  const until = (cond: () => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => (cond() ? resolve() : (wake = check));
      check();
    });
  const t0 = performance.now();
  await pool(pods, CONCURRENCY, (pod) => core.createNamespacedPod({ namespace, body: pod }));
  await until(() => running.size >= N);
  const t1 = performance.now();
  await pool(pods, CONCURRENCY, (pod) =>
    core.deleteNamespacedPod({
      name: pod.metadata.name,
      namespace,
      gracePeriodSeconds: 30,
      body: { gracePeriodSeconds: 30 },
    }),
  );
  await until(() => gone.size >= N);
  const t2 = performance.now();
  watch.abort();
  return { runningMs: t1 - t0, destroyedMs: t2 - t1 };
}

function kernelFor(kubeconfig: string, namespace: string, kernelId: string) {
  const backend = new KubernetesBackend({
    kubeConfig: kubeconfig,
    namespace,
    profiles: { bench: { schedulerName: SCHEDULER, labels: { "rk-bench": "1" } } },
  });
  const kernel = createRuntimeKernel({
    kernelId,
    backend,
    profiles: { bench: { runnable: { image: IMAGE, command: ["sleep", "600"] }, graceMs: 30_000 } },
    maxConcurrentStarts: CONCURRENCY,
  });
  return { backend, kernel };
}

/** The kernel: create() x N (resolves when running), stop() x N, destroy() x N. */
async function kernelRound(kubeconfig: string, namespace: string): Promise<Sample> {
  const { backend, kernel } = kernelFor(kubeconfig, namespace, `bench-k-${randomUUID().slice(0, 8)}`);
  const ids = Array.from({ length: N }, (_, i) => `bench-${i}`);
  const t0 = performance.now();
  await Promise.all(ids.map((workloadId) => kernel.create({ workloadId, profile: "bench" })));
  const t1 = performance.now();
  await Promise.all(ids.map((id) => kernel.stop(id)));
  await Promise.all(ids.map((id) => kernel.destroy(id)));
  const t2 = performance.now();
  const { total: requests, byKind } = backend.stats().requests;
  await kernel.shutdown();
  return { runningMs: t1 - t0, destroyedMs: t2 - t1, requests, byKind };
}

/** Requests per minute the backend makes while `counts` Pods run and nothing happens. */
async function idleRequests(kubeconfig: string, namespace: string, counts: number[]) {
  const { backend, kernel } = kernelFor(kubeconfig, namespace, `bench-idle-${randomUUID().slice(0, 8)}`);
  const out: { runningPods: number; requestsPerMinute: number; requestsPerPodPerMinute: number }[] = [];
  let created = 0;
  for (const count of counts) {
    const ids = Array.from({ length: count - created }, (_, i) => `idle-${created + i}`);
    await Promise.all(ids.map((workloadId) => kernel.create({ workloadId, profile: "bench" })));
    created = count;
    const before = backend.stats().requests.total;
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const perMinute = ((backend.stats().requests.total - before) * 60_000) / WINDOW_MS;
    out.push({
      runningPods: count,
      requestsPerMinute: round1(perMinute),
      requestsPerPodPerMinute: round1(perMinute / count),
    });
  }
  const ids = kernel.list().map((s) => s.workloadId);
  await Promise.all(ids.map((id) => kernel.destroy(id)));
  await kernel.shutdown();
  return out;
}

async function main() {
  const c = cluster();
  const stopKubelet = await fakeKubelet(c.kubeconfig, c.namespace);
  try {
    const raw: Sample[] = [];
    const kern: Sample[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      raw.push(await rawRound(c.kubeconfig, c.namespace));
      kern.push(await kernelRound(c.kubeconfig, c.namespace));
    }
    const idle = await idleRequests(c.kubeconfig, c.namespace, [100, 250, N]);
    const total = (s: Sample) => s.runningMs + s.destroyedMs;
    const ratios = raw.map((r, i) => total(kern[i] as Sample) / total(r));
    const result = {
      bench: "kubernetes",
      tier: "api",
      pods: N,
      rounds: ROUNDS,
      concurrency: CONCURRENCY,
      raw: {
        runningMs: round1(median(raw.map((s) => s.runningMs))),
        destroyedMs: round1(median(raw.map((s) => s.destroyedMs))),
        totalMs: round1(median(raw.map(total))),
      },
      kernel: {
        runningMs: round1(median(kern.map((s) => s.runningMs))),
        destroyedMs: round1(median(kern.map((s) => s.destroyedMs))),
        totalMs: round1(median(kern.map(total))),
        requestsPerWorkload: round1(median(kern.map((s) => (s.requests ?? 0) / N))),
        requestsByKind: kern.at(-1)?.byKind,
      },
      ratio: Math.round(median(ratios) * 100) / 100,
      target: 1.3,
      idle,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    stopKubelet();
    c.stop?.();
  }
}

await main();
