/**
 * The Docker backend: each workload run is one container, created sandboxed (no network, no
 * capabilities, no-new-privileges, an init as PID 1, limits from `resources`), labelled with
 * the kernel's identity so that a restarted kernel finds it again, and removed with its
 * anonymous volumes on cleanup.
 * @module
 */
import type Dockerode from "dockerode";
import {
  BackendUnavailableError,
  CleanupFailedError,
  ResourceExhaustedError,
  RuntimeKernelError,
  StartAbortedError,
  StartFailedError,
  WorkloadConflictError,
  WorkloadLostError,
} from "../../errors.js";
import {
  type Backend,
  type DiscoveredWorkload,
  type ExitStatus,
  LABELS,
  type LogEntry,
  type LogOptions,
  type StartRequest,
  type WorkloadHandle,
} from "../backend.js";
import { containerLogs } from "./container-logs.js";
import {
  BACKEND_LABEL,
  BACKEND_NAME,
  buildContainerSpec,
  type ContainerSpec,
  STOP_SIGNAL_LABEL,
} from "./container-spec.js";
import { DockerodeClient } from "./dockerode.js";
import {
  engineMessage,
  isConflict,
  isConnectionError,
  isNotFound,
  sanitize,
  statusOf,
  unavailable,
} from "./engine-errors.js";
import { ExitWatcher, exitStatus } from "./exit-watcher.js";
import { pullImage } from "./image-pull.js";
import {
  connectionFor,
  type DockerBackendOptions,
  type DockerClient,
  type DockerProfile,
  parseBackendOptions,
  parseRunnableDocker,
  type ResolvedDockerProfile,
  resolveProfile,
} from "./options.js";

/** The handle of one run: plain JSON, valid across kernel restarts. */
export interface DockerHandle extends WorkloadHandle {
  backend: "docker";
  /** The engine's full container id. */
  containerId: string;
  /** The container's name (`<prefix>-<workloadId>-<run hash>`). */
  name: string;
  /** The graceful stop signal, when the profile chose another than SIGTERM. */
  stopSignal?: string;
}

type ContainerInspect = Dockerode.ContainerInspectInfo;

/** The engine's state string of a container whose removal has begun. */
const REMOVING = "removing";

/**
 * A {@link Backend} that runs each workload as a Docker container through dockerode.
 *
 * @example
 * ```ts
 * import { createRuntimeKernel } from "runtime-kernel";
 * import { DockerBackend } from "runtime-kernel/docker";
 *
 * const kernel = createRuntimeKernel({
 *   backend: new DockerBackend({ socketPath: "/var/run/docker.sock" }),
 *   profiles: { agent: { runnable: { image: "alpine:3.20", command: ["sleep", "600"] } } },
 * });
 * ```
 */
export class DockerBackend implements Backend<DockerHandle> {
  /** Recorded in every handle. */
  readonly name = BACKEND_NAME;
  readonly #docker: Dockerode;
  readonly #namePrefix: string;
  readonly #defaults: DockerProfile | undefined;
  readonly #profiles: Record<string, DockerProfile>;
  readonly #cleanupTimeoutMs: number;
  readonly #watcher: ExitWatcher;

  constructor(options: DockerBackendOptions = {}) {
    const parsed = parseBackendOptions(options);
    this.#docker =
      (parsed.docker as Dockerode | undefined) ??
      new DockerodeClient(
        parsed.socketPath !== undefined
          ? { socketPath: parsed.socketPath }
          : parsed.host !== undefined
            ? connectionFor(parsed.host)
            : undefined,
      );
    this.#namePrefix = parsed.namePrefix ?? "rk";
    this.#defaults = parsed.defaults;
    this.#profiles = parsed.profiles ?? {};
    this.#cleanupTimeoutMs = parsed.cleanupTimeoutMs ?? 30_000;
    this.#watcher = new ExitWatcher(this.#docker, {
      labels: [`${BACKEND_LABEL}=${BACKEND_NAME}`],
      resolveExit: (id) => this.#resolveExit(id),
      reconnectMs: { initial: parsed.reconnectMs?.initial ?? 100, max: parsed.reconnectMs?.max ?? 5_000 },
    });
  }

  /** The dockerode client this backend talks through (see {@link DockerClient}). */
  get docker(): DockerClient {
    return this.#docker;
  }

  /** The settings a request's container gets: defaults, then the backend's profile, then `runnable.docker`. */
  resolveProfile(request: StartRequest): ResolvedDockerProfile {
    const fromRunnable = parseRunnableDocker(request.runnable.docker, request.workloadId);
    return resolveProfile(this.#defaults, this.#profiles[request.profile], fromRunnable);
  }

  /** The create body for `request`, without creating anything (for inspection and tests). */
  containerSpec(request: StartRequest): ContainerSpec {
    return buildContainerSpec(request, this.resolveProfile(request), this.#namePrefix);
  }

  async start(request: StartRequest, options: { signal: AbortSignal }): Promise<DockerHandle> {
    const { signal } = options;
    const { workloadId } = request;
    if (signal.aborted) throw new StartAbortedError(workloadId, { cause: signal.reason });
    const profile = this.resolveProfile(request);
    const spec = buildContainerSpec(request, profile, this.#namePrefix);

    if (profile.pullPolicy === "always") {
      await pullImage(this.#docker, spec.image, profile, request.workloadId, signal);
      if (signal.aborted) throw new StartAbortedError(workloadId, { cause: signal.reason });
    }
    // Created under an open event stream, the container's exit cannot be missed: its watch
    // then needs no inspect.
    await this.#watcher.prepare();
    let started: string | undefined;
    const generation = this.#watcher.openGeneration();
    try {
      const container = await this.#create(spec, profile, request, signal);
      const handle: DockerHandle = {
        workloadId,
        runId: request.runId,
        backend: "docker",
        containerId: container.id,
        name: spec.name,
      };
      if (profile.stopSignal !== "SIGTERM") handle.stopSignal = profile.stopSignal;
      try {
        if (signal.aborted) throw new StartAbortedError(workloadId, { cause: signal.reason });
        try {
          await container.start();
        } catch (error) {
          if (isConnectionError(error)) throw unavailable(`starting container ${spec.name}`, error);
          // 304: already started (a retried request); anything else is the runtime refusing.
          if (statusOf(error) !== 304) {
            throw new StartFailedError(
              workloadId,
              `Container ${spec.name} of image ${spec.image} failed to start: ${engineMessage(error)}`,
              { cause: sanitize(error) },
            );
          }
        }
        if (signal.aborted) throw new StartAbortedError(workloadId, { cause: signal.reason });
      } catch (error) {
        // Leave nothing behind: the run never became a workload the kernel knows.
        await this.#removeQuietly(container.id);
        throw error;
      }
      started = container.id;
      return handle;
    } finally {
      this.#watcher.started(started, generation);
    }
  }

  async exitCode(handle: DockerHandle): Promise<number | null> {
    const status = await this.#resolveExit(handle.containerId);
    if (status?.lost) throw new WorkloadLostError(handle.workloadId, lostMessage(handle));
    return status ? status.exitCode : null;
  }

  /** Sends the profile's stop signal (SIGTERM) and returns at once: the kernel times the grace. */
  async terminate(handle: DockerHandle, _options: { graceMs: number }): Promise<void> {
    await this.#signal(handle, handle.stopSignal ?? "SIGTERM");
  }

  /** SIGKILL; the engine answers once the container is dead. */
  async kill(handle: DockerHandle): Promise<void> {
    await this.#signal(handle, "SIGKILL");
  }

  /** Removes the container and its anonymous volumes; resolves once the engine confirms it is gone. */
  async cleanup(handle: DockerHandle): Promise<void> {
    const container = this.#docker.getContainer(handle.containerId);
    try {
      await container.remove({ force: true, v: true });
    } catch (error) {
      if (isNotFound(error)) {
        this.#watcher.forget(handle.containerId);
        return;
      }
      if (!isConflict(error)) {
        throw new CleanupFailedError(
          handle.workloadId,
          `Removing container ${handle.name} failed: ${sanitize(error).message}`,
          { cause: sanitize(error), retryable: true },
        );
      }
      // 409: a removal is already in progress elsewhere; confirm that it finishes.
      await this.#awaitGone(handle);
    }
    this.#watcher.forget(handle.containerId);
  }

  watchExit(handle: DockerHandle, onExit: (status: ExitStatus) => void): () => void {
    return this.#watcher.watch(handle.containerId, onExit);
  }

  async discover(selector: { kernelId: string }): Promise<DiscoveredWorkload<DockerHandle>[]> {
    let containers: Dockerode.ContainerInfo[];
    try {
      containers = await this.#docker.listContainers({
        all: true,
        filters: { label: [`${LABELS.kernelId}=${selector.kernelId}`, `${BACKEND_LABEL}=${BACKEND_NAME}`] },
      });
    } catch (error) {
      throw this.#apiError(`listing the containers of kernel ${selector.kernelId}`, error);
    }
    const found: Array<DiscoveredWorkload<DockerHandle> | undefined> = await Promise.all(
      containers.map(async (info) => {
        const labels = info.Labels ?? {};
        const workloadId = labels[LABELS.workloadId];
        const runId = labels[LABELS.runId];
        if (!workloadId || !runId) return undefined;
        const handle: DockerHandle = {
          workloadId,
          runId,
          backend: "docker",
          containerId: info.Id,
          name: (info.Names?.[0] ?? info.Id).replace(/^\//, ""),
        };
        const stopSignal = labels[STOP_SIGNAL_LABEL];
        if (stopSignal && stopSignal !== "SIGTERM") handle.stopSignal = stopSignal;
        let exit: ExitStatus | null;
        if (info.State === "running" || info.State === "paused" || info.State === "restarting") {
          exit = null;
        } else {
          exit = await this.#resolveExit(info.Id);
          if (exit?.lost && !(info.State === "created" || info.State === REMOVING)) return undefined; // gone since the list
        }
        return { handle, labels: { ...labels }, exit };
      }),
    );
    return found.filter((f): f is DiscoveredWorkload<DockerHandle> => f !== undefined);
  }

  logs(handle: DockerHandle, options: LogOptions): AsyncIterable<LogEntry> {
    return containerLogs(this.#docker.getContainer(handle.containerId), options, (what, error) =>
      this.#workloadError(handle, what, error),
    );
  }

  /** Closes the event stream. The backend may not be used afterwards. */
  async close(): Promise<void> {
    this.#watcher.close();
  }

  // ---------------------------------------------------------------------------------------

  async #create(
    spec: ContainerSpec,
    profile: ResolvedDockerProfile,
    request: StartRequest,
    signal: AbortSignal,
  ): Promise<Dockerode.Container> {
    let pulled = profile.pullPolicy === "always";
    let replacedStale = false;
    for (;;) {
      try {
        return await this.#docker.createContainer(spec.options);
      } catch (error) {
        if (isConnectionError(error)) throw unavailable(`creating container ${spec.name}`, error);
        const message = engineMessage(error);
        if (isNotFound(error) && /image/i.test(message)) {
          if (profile.pullPolicy === "never") {
            throw new StartFailedError(
              request.workloadId,
              `Image ${spec.image} is not present on the Docker engine and the pull policy is "never" ` +
                `(load it first, or set runnable.docker.pullPolicy to "if-not-present")`,
              { cause: sanitize(error) },
            );
          }
          if (pulled) {
            throw new StartFailedError(
              request.workloadId,
              `Image ${spec.image} is still missing after a pull`,
              {
                cause: sanitize(error),
              },
            );
          }
          await pullImage(this.#docker, spec.image, profile, request.workloadId, signal);
          pulled = true;
          if (signal.aborted) throw new StartAbortedError(request.workloadId, { cause: signal.reason });
          continue;
        }
        if (isConflict(error) && !replacedStale) {
          // The name is taken: by a stale container of this very run (a start retried after a
          // crash between create and start), which is replaced; anything else is a conflict.
          await this.#replaceStale(spec, request);
          replacedStale = true;
          continue;
        }
        throw startError(request.workloadId, `Creating container ${spec.name} failed`, error);
      }
    }
  }

  async #replaceStale(spec: ContainerSpec, request: StartRequest): Promise<void> {
    let existing: ContainerInspect;
    try {
      existing = await this.#docker.getContainer(spec.name).inspect();
    } catch (error) {
      if (isNotFound(error)) return; // Gone meanwhile: just create again.
      throw this.#apiError(`inspecting container ${spec.name}`, error);
    }
    const labels = existing.Config?.Labels ?? {};
    if (labels[LABELS.runId] !== request.runId || labels[LABELS.kernelId] !== request.kernelId) {
      throw new WorkloadConflictError(
        request.workloadId,
        `A container named ${spec.name} already exists and belongs to another run`,
      );
    }
    try {
      await this.#docker.getContainer(existing.Id).remove({ force: true, v: true });
    } catch (error) {
      if (!isNotFound(error)) throw this.#apiError(`removing stale container ${spec.name}`, error);
    }
  }

  async #signal(handle: DockerHandle, signal: string): Promise<void> {
    try {
      await this.#docker.getContainer(handle.containerId).kill({ signal });
    } catch (error) {
      // Gone, or not running (409): either way there is nothing left to signal.
      if (isNotFound(error) || isConflict(error)) return;
      // Docker 20.10 answers 500 "is not running" for a container that exited meanwhile.
      if (/is not running/i.test(engineMessage(error))) return;
      throw this.#apiError(`sending ${signal} to container ${handle.name}`, error, handle.workloadId);
    }
  }

  /** The container's exit: `null` while it runs, `lost` when it is gone or being removed. */
  async #resolveExit(containerId: string): Promise<ExitStatus | null> {
    let info: ContainerInspect;
    try {
      info = await this.#docker.getContainer(containerId).inspect();
    } catch (error) {
      if (isNotFound(error)) return { exitCode: null, lost: true };
      throw this.#apiError(`inspecting container ${containerId.slice(0, 12)}`, error);
    }
    const state = info.State;
    if (state.Status === REMOVING) return { exitCode: null, lost: true };
    if (state.Running || state.Restarting || state.Paused) return null;
    // Created but never started: nothing runs and nothing will, so there is no exit to report.
    if (state.Status === "created") return { exitCode: null, lost: true };
    return exitStatus(state.ExitCode, state.OOMKilled === true);
  }

  async #awaitGone(handle: DockerHandle): Promise<void> {
    const deadline = Date.now() + this.#cleanupTimeoutMs;
    const container = this.#docker.getContainer(handle.containerId);
    for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
      try {
        await container.inspect();
      } catch (error) {
        if (isNotFound(error)) return;
        throw new CleanupFailedError(handle.workloadId, `Confirming removal of ${handle.name} failed`, {
          cause: sanitize(error),
          retryable: true,
        });
      }
      if (Date.now() > deadline) {
        throw new CleanupFailedError(
          handle.workloadId,
          `Container ${handle.name} was still being removed after ${this.#cleanupTimeoutMs} ms`,
          { retryable: true },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  async #removeQuietly(containerId: string): Promise<void> {
    try {
      await this.#docker.getContainer(containerId).remove({ force: true, v: true });
    } catch {
      // Best effort: the start's own error is the one to report. A container left here still
      // carries the kernel's labels, so recovery finds and reaps it.
    }
  }

  #apiError(what: string, error: unknown, workloadId?: string): RuntimeKernelError {
    if (error instanceof RuntimeKernelError) return error;
    if (isConnectionError(error)) return unavailable(what, error);
    return new RuntimeKernelError(
      "BACKEND_ERROR",
      `Docker engine error while ${what}: ${sanitize(error).message}`,
      {
        cause: sanitize(error),
        retryable: (statusOf(error) ?? 500) >= 500,
        workloadId,
      },
    );
  }

  #workloadError(handle: DockerHandle, what: string, error: unknown): RuntimeKernelError {
    if (isNotFound(error)) return new WorkloadLostError(handle.workloadId, lostMessage(handle));
    return this.#apiError(`${what} of ${handle.name}`, error, handle.workloadId);
  }
}

function lostMessage(handle: DockerHandle): string {
  return `Container ${handle.name} (${handle.containerId.slice(0, 12)}) of workload "${handle.workloadId}" no longer exists`;
}

function startError(workloadId: string, what: string, error: unknown): RuntimeKernelError {
  if (error instanceof RuntimeKernelError) return error;
  const message = engineMessage(error);
  if (
    /no space left|too many open files|cannot allocate memory|resource temporarily unavailable/i.test(message)
  ) {
    return new ResourceExhaustedError(`${what}: ${message}`, { cause: sanitize(error), workloadId });
  }
  if (isConnectionError(error))
    return new BackendUnavailableError(`${what}: ${message}`, { cause: sanitize(error) });
  return new StartFailedError(workloadId, `${what}: ${message}`, { cause: sanitize(error) });
}
