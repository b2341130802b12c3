/**
 * KubernetesBackend: each run is a bare Pod (`restartPolicy: Never`) with its environment in a
 * per-run Secret; exits come from one shared Pod watch per kernel id.
 * @module
 */
import {
  BackendUnavailableError,
  CleanupFailedError,
  isRuntimeKernelError,
  StartAbortedError,
  WorkloadLostError,
} from "../../errors.js";
import type {
  Backend,
  DiscoveredWorkload,
  ExitStatus,
  LogEntry,
  LogOptions,
  StartRequest,
  WorkloadHandle,
} from "../backend.js";
import { ExitRegistry } from "../exit-registry.js";
import { apiFailure, isStatus, KubeApi, type RequestCounts, toKernelError } from "./api.js";
import type { KubeConfig } from "./client.js";
import { loadKubeConfig } from "./kubeconfig.js";
import type { V1Pod } from "./models.js";
import type { KubernetesBackendOptions, KubernetesProfile } from "./options.js";
import { podLogs } from "./pod-logs.js";
import {
  ANNOTATION_IDS,
  ANNOTATION_LABELS,
  buildPodManifests,
  kernelSelector,
  mergeProfiles,
} from "./pod-spec.js";
import { exitOf, exitOfDeleted } from "./pod-status.js";
import { waitGone, waitStarted } from "./pod-waits.js";
import { PodWatch, type PodWatchStats } from "./pod-watch.js";
import { podWatchTransport } from "./pod-watch-transport.js";

/** The handle of one run: plain JSON, enough to find the Pod again after a kernel restart. */
export interface KubernetesHandle extends WorkloadHandle {
  backend: "kubernetes";
  kernelId: string;
  namespace: string;
  /** The Pod's name (also the Secret's, when there is one). */
  pod: string;
  /** The Pod's uid, so a later Pod with the same name is never mistaken for this one. */
  uid: string;
  /** The per-run Secret holding the environment, if any. */
  secret?: string;
}

/** What the backend did against the API server (for the benchmark and tests). */
export interface KubernetesBackendStats {
  requests: RequestCounts;
  watch: PodWatchStats;
}

function resolveNamespace(kc: KubeConfig, option: string | undefined): string {
  if (option) return option;
  const fromEnv = process.env.POD_NAMESPACE;
  if (fromEnv) return fromEnv;
  const context = kc.getContextObject(kc.getCurrentContext());
  return context?.namespace || "default";
}

/**
 * Runs workloads as bare Pods through `@kubernetes/client-node`.
 *
 * @example
 * ```ts
 * import { createRuntimeKernel } from "runtime-kernel";
 * import { KubernetesBackend } from "runtime-kernel/kubernetes";
 * const backend = new KubernetesBackend({ namespace: "agents", profiles: { default: { imagePullPolicy: "IfNotPresent" } } });
 * const kernel = createRuntimeKernel({ backend, profiles: { default: { runnable: { image: "busybox:1.36", command: ["sleep", "60"] } } } });
 * ```
 */
export class KubernetesBackend implements Backend<KubernetesHandle> {
  readonly name = "kubernetes";
  /** The namespace of every Pod and Secret. */
  readonly namespace: string;
  readonly #api: KubeApi;
  readonly #options: KubernetesBackendOptions;
  readonly #watches = new Map<string, PodWatch>();
  /** Grace (seconds) of the kernel's own delete of each Pod: a Pod gone without one was deleted behind its back. */
  readonly #deleting = new Map<string, number>();
  /** Final exits of Pods that are gone, by Pod name, kept so `exitCode` can still answer. */
  readonly #exits = new ExitRegistry();
  /** Runs being started by this instance: their Secret may exist before their Pod. */
  readonly #starting = new Set<string>();
  #closed = false;

  constructor(options: KubernetesBackendOptions = {}) {
    this.#options = options;
    const kc = loadKubeConfig(options.kubeConfig);
    this.#api = new KubeApi(kc);
    this.namespace = resolveNamespace(kc, options.namespace);
  }

  /** Requests made so far and what the shared watches did. */
  stats(): KubernetesBackendStats {
    const watch: PodWatchStats = { lists: 0, watches: 0, expired: 0, dropped: 0, events: 0 };
    for (const w of this.#watches.values())
      for (const k of Object.keys(watch) as (keyof PodWatchStats)[]) watch[k] += w.stats[k];
    return { requests: { total: this.#api.counts.total, byKind: { ...this.#api.counts.byKind } }, watch };
  }

  #profile(name: string): KubernetesProfile {
    return mergeProfiles(this.#options.defaults, this.#options.profiles?.[name]);
  }

  /** The shared watch of `kernelId`'s Pods (one per kernel id; a backend normally serves one kernel). */
  #watchFor(kernelId: string): PodWatch {
    let w = this.#watches.get(kernelId);
    if (w) return w;
    const selector = kernelSelector(kernelId);
    const ns = this.namespace;
    const timeoutSeconds = this.#options.watchTimeoutSeconds ?? 300;
    w = new PodWatch(podWatchTransport(this.#api, ns, selector, timeoutSeconds), {
      resyncMs: this.#options.resyncMs ?? 300_000,
      idleMs: (timeoutSeconds * 1.1 + 30) * 1000,
      reconnectMs: {
        initial: this.#options.reconnectMs?.initial ?? 200,
        max: this.#options.reconnectMs?.max ?? 10_000,
      },
    });
    // Every Pod seen gone gets its final exit recorded, watched or not, so exitCode can answer.
    w.onGone((name, last) => {
      if (!this.#exits.has(name)) this.#exits.remember(name, exitOfDeleted(last, this.#deleting.get(name)));
    });
    this.#watches.set(kernelId, w);
    return w;
  }

  async #synced(kernelId: string): Promise<PodWatch> {
    if (this.#closed) throw new BackendUnavailableError("The Kubernetes backend is closed");
    const w = this.#watchFor(kernelId);
    try {
      await w.ready();
    } catch (error) {
      if (isRuntimeKernelError(error)) throw error;
      throw toKernelError(error, "listing Pods");
    }
    return w;
  }

  /** The exit of `handle` given the watch's view: `null` while it runs, `undefined` when unknown. */
  #exitFromCache(w: PodWatch, handle: KubernetesHandle): ExitStatus | null | undefined {
    const pod = w.pods.get(handle.pod);
    if (pod && pod.metadata?.uid === handle.uid) return exitOf(pod);
    return this.#exits.get(handle.pod);
  }

  async start(request: StartRequest, { signal }: { signal: AbortSignal }): Promise<KubernetesHandle> {
    const profile = this.#profile(request.profile);
    const { pod, secret } = buildPodManifests(request, {
      namespace: this.namespace,
      namePrefix: this.#options.namePrefix ?? "rk",
      profile,
    });
    if (signal.aborted) throw new StartAbortedError(request.workloadId);
    const watch = await this.#synced(request.kernelId);
    const name = pod.metadata.name;
    const ns = this.namespace;
    const handle: KubernetesHandle = {
      workloadId: request.workloadId,
      runId: request.runId,
      backend: "kubernetes",
      kernelId: request.kernelId,
      namespace: ns,
      pod: name,
      uid: "",
    };
    if (secret) handle.secret = secret.metadata.name;

    // Subscribe before creating, so no event of the new Pod can slip between create and wait.
    let onChange: (() => void) | undefined;
    const unsubscribe = watch.subscribe(name, () => onChange?.());
    let created = false;
    this.#starting.add(name);
    try {
      if (secret) {
        try {
          await this.#api.call("create", (core) =>
            core.createNamespacedSecret({ namespace: ns, body: secret }),
          );
        } catch (error) {
          // A retried start of the same run finds its own Secret: fine (same run, same content).
          if (!isStatus(error, 409))
            throw toKernelError(error, `creating Secret ${name}`, request.workloadId);
        }
      }
      if (signal.aborted) throw new StartAbortedError(request.workloadId);
      let createdPod: V1Pod;
      try {
        createdPod = await this.#api.call("create", (core) =>
          core.createNamespacedPod({ namespace: ns, body: pod }),
        );
      } catch (error) {
        if (!isStatus(error, 409)) throw toKernelError(error, `creating Pod ${name}`, request.workloadId);
        createdPod = await this.#api.call("get", (core) => core.readNamespacedPod({ name, namespace: ns }));
      }
      created = true;
      handle.uid = createdPod.metadata?.uid ?? "";
      if (secret) {
        // Owned by its Pod: a cluster's garbage collector removes it with the Pod even if we never do.
        await this.#api
          .call("patch", (core) =>
            core.patchNamespacedSecret({
              name,
              namespace: ns,
              body: [
                {
                  op: "add",
                  path: "/metadata/ownerReferences",
                  value: [
                    { apiVersion: "v1", kind: "Pod", name, uid: handle.uid, blockOwnerDeletion: false },
                  ],
                },
              ],
            }),
          )
          .catch((error: unknown) => {
            throw toKernelError(error, `setting the owner of Secret ${name}`, request.workloadId);
          });
      }
      await waitStarted(watch, handle, {
        signal,
        timeoutMs: this.#options.startTimeoutMs ?? 120_000,
        listen: (fn) => {
          onChange = fn;
        },
      });
      return handle;
    } catch (error) {
      unsubscribe();
      await this.#discard(handle, created).catch(() => undefined);
      if (isRuntimeKernelError(error)) throw error;
      if (signal.aborted) throw new StartAbortedError(request.workloadId, { cause: error });
      throw toKernelError(error, `starting ${name}`, request.workloadId);
    } finally {
      this.#starting.delete(name);
      unsubscribe();
    }
  }

  /** Deletes what a failed start created; waits until the Pod is gone. */
  async #discard(handle: KubernetesHandle, created: boolean): Promise<void> {
    if (created) await this.cleanup(handle);
    else if (handle.secret) await this.#deleteSecret(handle.secret, handle.namespace, handle.workloadId);
  }

  async exitCode(handle: KubernetesHandle): Promise<number | null> {
    const w = await this.#synced(handle.kernelId);
    const exit = this.#exitFromCache(w, handle);
    if (exit === undefined) {
      // Not in the watch's view: confirm with the server before calling it lost.
      try {
        const pod = await this.#api.call("get", (core) =>
          core.readNamespacedPod({ name: handle.pod, namespace: handle.namespace }),
        );
        if (pod.metadata?.uid === handle.uid) return exitOf(pod)?.exitCode ?? null;
      } catch (error) {
        if (!isStatus(error, 404)) throw toKernelError(error, `reading Pod ${handle.pod}`, handle.workloadId);
      }
      throw new WorkloadLostError(handle.workloadId, `Pod ${handle.pod} no longer exists`);
    }
    if (exit === null) return null;
    if (exit.lost)
      throw new WorkloadLostError(handle.workloadId, `Pod ${handle.pod} was lost before it exited`);
    return exit.exitCode;
  }

  watchExit(handle: KubernetesHandle, onExit: (status: ExitStatus) => void): () => void {
    let unsubscribe: (() => void) | undefined;
    const watch = this.#exits.watch(handle.pod, (exit) => {
      unsubscribe?.();
      onExit(exit);
    });
    const w = this.#watchFor(handle.kernelId);
    unsubscribe = w.subscribe(handle.pod, (pod, last) => {
      if (pod) {
        if (pod.metadata?.uid !== handle.uid) return;
        const exit = exitOf(pod);
        if (exit) watch.deliver(exit);
        return;
      }
      if (last && last.metadata?.uid !== handle.uid) return;
      watch.deliver(this.#onDeleted(handle.pod, last));
    });
    w.ready().then(
      () => {
        if (watch.done) return;
        const exit = this.#exitFromCache(w, handle);
        if (exit) watch.deliver(exit);
        else if (exit === undefined) watch.deliver(this.#onDeleted(handle.pod, undefined));
      },
      () => {
        // The watch could not sync; the kernel's exitCode poll reports the API error instead.
      },
    );
    if (watch.done) unsubscribe();
    return () => {
      watch.stop();
      unsubscribe?.();
    };
  }

  /** The final exit of a Pod seen gone, remembered for `exitCode`. */
  #onDeleted(pod: string, last: V1Pod | undefined): ExitStatus {
    const known = this.#exits.get(pod);
    if (known) return known;
    const exit = exitOfDeleted(last, this.#deleting.get(pod));
    this.#exits.remember(pod, exit);
    return exit;
  }

  async #deletePod(handle: KubernetesHandle, graceSeconds: number): Promise<void> {
    const previous = this.#deleting.get(handle.pod);
    this.#deleting.set(handle.pod, previous === undefined ? graceSeconds : Math.min(previous, graceSeconds));
    // On a Pod already terminating with a grace period, a delete with grace 0 only shortens the
    // period to 0 (the API server then waits for the kubelet); a second one removes it at once.
    const cached = this.#watches.get(handle.kernelId)?.pods.get(handle.pod);
    const terminating =
      (previous !== undefined && previous > 0) ||
      (cached?.metadata?.deletionTimestamp !== undefined &&
        (cached.metadata.deletionGracePeriodSeconds ?? 0) > 0);
    await this.#deleteOnce(handle, graceSeconds);
    if (graceSeconds === 0 && terminating) await this.#deleteOnce(handle, 0);
  }

  async #deleteOnce(handle: KubernetesHandle, graceSeconds: number): Promise<void> {
    try {
      await this.#api.call("delete", (core) =>
        core.deleteNamespacedPod({
          name: handle.pod,
          namespace: handle.namespace,
          gracePeriodSeconds: graceSeconds,
          // The body's options win over the query's: the grace period goes in both.
          body: {
            gracePeriodSeconds: graceSeconds,
            ...(handle.uid ? { preconditions: { uid: handle.uid } } : {}),
          },
        }),
      );
    } catch (error) {
      // Gone already, or a different Pod now holds the name (409 on the uid precondition): ours is gone.
      if (isStatus(error, 404) || isStatus(error, 409)) return;
      throw toKernelError(error, `deleting Pod ${handle.pod}`, handle.workloadId);
    }
  }

  async #deleteSecret(name: string, namespace: string, workloadId?: string): Promise<void> {
    try {
      await this.#api.call("delete", (core) => core.deleteNamespacedSecret({ name, namespace }));
    } catch (error) {
      if (isStatus(error, 404)) return;
      throw toKernelError(error, `deleting Secret ${name}`, workloadId);
    }
  }

  async terminate(handle: KubernetesHandle, { graceMs }: { graceMs: number }): Promise<void> {
    await this.#deletePod(handle, graceMs <= 0 ? 0 : Math.max(1, Math.ceil(graceMs / 1000)));
  }

  async kill(handle: KubernetesHandle): Promise<void> {
    await this.#deletePod(handle, 0);
  }

  async cleanup(handle: KubernetesHandle): Promise<void> {
    try {
      // A Pod the synced watch has seen go needs no second delete.
      const w = this.#watches.get(handle.kernelId);
      const seenGone = w?.isSynced === true && !w.pods.has(handle.pod) && this.#exits.has(handle.pod);
      if (!seenGone) await this.#deletePod(handle, 0);
      if (handle.secret) await this.#deleteSecret(handle.secret, handle.namespace, handle.workloadId);
    } catch (error) {
      throw new CleanupFailedError(
        handle.workloadId,
        `Cleanup of Pod ${handle.pod} failed: ${apiFailure(error).message}`,
        {
          cause: error,
          retryable: true,
        },
      );
    }
    await this.#confirmGone(handle);
    // Reclaimed: from now on the run is unknown (exitCode says lost), and nothing of it is kept.
    this.#exits.forget(handle.pod);
    this.#deleting.delete(handle.pod);
  }

  /** Resolves once the Pod is gone from the server (seen through the watch, else asked directly). */
  async #confirmGone(handle: KubernetesHandle): Promise<void> {
    const timeoutMs = this.#options.cleanupTimeoutMs ?? 60_000;
    let w: PodWatch | undefined;
    try {
      w = await this.#synced(handle.kernelId);
    } catch {
      w = undefined;
    }
    if (w && (await waitGone(w, handle, timeoutMs))) return;
    // The watch did not show it gone: the server has the last word.
    try {
      const pod = await this.#api.call("get", (core) =>
        core.readNamespacedPod({ name: handle.pod, namespace: handle.namespace }),
      );
      if (handle.uid && pod.metadata?.uid !== handle.uid) return;
    } catch (error) {
      if (isStatus(error, 404)) return;
      throw new CleanupFailedError(
        handle.workloadId,
        `Could not confirm Pod ${handle.pod} is gone: ${apiFailure(error).message}`,
        {
          cause: error,
          retryable: true,
        },
      );
    }
    throw new CleanupFailedError(
      handle.workloadId,
      `Pod ${handle.pod} still exists ${timeoutMs} ms after its deletion`,
      {
        retryable: true,
      },
    );
  }

  async discover({ kernelId }: { kernelId: string }): Promise<DiscoveredWorkload<KubernetesHandle>[]> {
    const w = await this.#synced(kernelId);
    const found: DiscoveredWorkload<KubernetesHandle>[] = [];
    for (const pod of w.pods.values()) {
      const meta = pod.metadata ?? {};
      let ids: { kernelId?: string; workloadId?: string; runId?: string } = {};
      let labels: Record<string, string> = {};
      try {
        ids = JSON.parse(meta.annotations?.[ANNOTATION_IDS] ?? "{}") as typeof ids;
        labels = JSON.parse(meta.annotations?.[ANNOTATION_LABELS] ?? "{}") as Record<string, string>;
      } catch {
        continue; // not one of ours after all
      }
      if (ids.kernelId !== kernelId || !ids.workloadId || !ids.runId || !meta.name) continue;
      const secretRef = pod.spec?.containers?.[0]?.env?.find((e) => e.valueFrom?.secretKeyRef)?.valueFrom
        ?.secretKeyRef?.name;
      const handle: KubernetesHandle = {
        workloadId: ids.workloadId,
        runId: ids.runId,
        backend: "kubernetes",
        kernelId,
        namespace: meta.namespace ?? this.namespace,
        pod: meta.name,
        uid: meta.uid ?? "",
      };
      if (secretRef) handle.secret = secretRef;
      found.push({ handle, labels, exit: exitOf(pod) });
    }
    if (this.#options.reapOrphanSecrets) await this.#deleteOrphanSecrets(kernelId, w);
    return found;
  }

  /**
   * Deletes the Secrets of `kernelId` that no Pod goes with: a kernel that died between
   * creating a run's Secret and its Pod left them, with the run's credentials inside, and
   * no Pod owns them for a garbage collector to find. Only the Secrets of runs this instance
   * is starting are spared: a kernel id belongs to one kernel at a time.
   */
  async #deleteOrphanSecrets(kernelId: string, w: PodWatch): Promise<void> {
    const list = await this.#api.call("list", (core) =>
      core.listNamespacedSecret({ namespace: this.namespace, labelSelector: kernelSelector(kernelId) }),
    );
    for (const secret of list.items) {
      const name = secret.metadata?.name;
      if (!name || w.pods.has(name) || this.#starting.has(name)) continue;
      await this.#deleteSecret(name, this.namespace);
    }
  }

  logs(handle: KubernetesHandle, options: LogOptions): AsyncIterable<LogEntry> {
    return podLogs(this.#api, handle, options);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#watches.values()) w.close();
    this.#watches.clear();
    this.#api.close();
  }
}
