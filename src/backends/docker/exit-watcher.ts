/**
 * Exit detection pushed by the engine: one `/events` stream for all the containers a backend
 * watches (not one `wait` connection per container), filtered on the backend's label.
 *
 * - `die` carries the exit code; an exit code of 137 (SIGKILL, which is also how the OOM
 *   killer and a forced removal end a container) is confirmed with an inspect, which tells an
 *   OOM kill (`oomKilled`) and a container being removed behind our back (`lost`) apart.
 * - `destroy` of a container whose death was never seen reports it `lost`.
 * - The stream asks for the engine's recent events (`since`), so nothing is missed between a
 *   container's start and the stream's subscription, and every watch is reconciled with an
 *   inspect when the stream (re)opens: after an engine restart the exits it missed are found.
 * - A dropped stream reconnects with a capped exponential backoff while anything is watched.
 *   Starts open it ahead of their create (`prepare`), so a container created under an open
 *   stream needs no inspect when its watch arrives. With nothing watched it lingers briefly,
 *   unref'd, then closes: an idle backend holds no connection and never keeps the process alive.
 * @module
 */
import type { Readable } from "node:stream";
import type Dockerode from "dockerode";
import { BoundedMap } from "../../bounded-map.js";
import { type ExitStatus, signalForExitCode } from "../backend.js";
import { EXIT_RECORD_LIMIT, ExitRegistry } from "../exit-registry.js";

/** Inspects one container: its exit, `null` while it runs. Rejects when the engine cannot tell. */
export type ResolveExit = (containerId: string) => Promise<ExitStatus | null>;

interface EngineEvent {
  Type?: string;
  Action?: string;
  id?: string;
  time?: number;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

/** How far back the first subscription asks the engine to replay (seconds, on the local clock). */
const REPLAY_SECONDS = 60;
/** How long an unwatched stream stays open (unref'd) for the watches of starts about to finish. */
const DEFAULT_LINGER_MS = 2_000;

/** Options of {@link ExitWatcher}. */
export interface ExitWatcherOptions {
  /** The `label` filters of the stream (e.g. `["runtime-kernel.dev/backend=docker"]`). */
  labels: string[];
  resolveExit: ResolveExit;
  reconnectMs: { initial: number; max: number };
  /** How long the stream stays open with nothing watched. Default 2 s. */
  lingerMs?: number;
  /** Called with errors nobody awaits (a failed reconnect), for diagnosis. */
  onError?: (error: unknown) => void;
}

/** Shared exit watch over the engine's event stream. */
export class ExitWatcher {
  readonly #docker: Dockerode;
  readonly #options: ExitWatcherOptions;
  /** Exits by container id, remembered for a watch that arrives after the event, and the watches. */
  readonly #exits: ExitRegistry;
  readonly #oomSeen = new Set<string>();
  /**
   * Containers whose start this process saw while the stream was open, with that stream's
   * generation; bounded like the exits: a container cleaned up elsewhere is never forgotten here.
   */
  readonly #startedUnder = new BoundedMap<string, number>({ limit: EXIT_RECORD_LIMIT });
  #stream: Readable | undefined;
  #state: "idle" | "connecting" | "open" = "idle";
  /** Bumped every time a stream opens: a container started under generation g was covered by it. */
  #generation = 0;
  #lastEventTime: number | undefined;
  #backoff: number;
  #retryTimer: NodeJS.Timeout | undefined;
  #lingerTimer: NodeJS.Timeout | undefined;
  #opened: Array<() => void> = [];
  /** Starts between `prepare` and `started`: the stream stays open for their watches. */
  #pendingStarts = 0;
  #closed = false;

  constructor(docker: Dockerode, options: ExitWatcherOptions) {
    this.#docker = docker;
    this.#options = options;
    this.#backoff = options.reconnectMs.initial;
    this.#exits = new ExitRegistry({
      onError: (error) => this.#options.onError?.(error),
      onIdle: () => {
        if (this.#pendingStarts === 0) this.#scheduleLinger();
      },
    });
  }

  /** The current stream's generation when it is open (a container created now is covered by it). */
  openGeneration(): number | undefined {
    return this.#state === "open" ? this.#generation : undefined;
  }

  /**
   * Opens the stream ahead of a start, so that the container is created under it and its
   * watch needs no inspect; every call must be followed by {@link started}. Resolves once
   * open, or as soon as it cannot open (the watch then falls back to an inspect). With
   * nothing watched and no start pending the stream lingers briefly, then closes; it never
   * keeps the process alive on its own.
   */
  prepare(): Promise<void> {
    this.#pendingStarts++;
    clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
    if (this.#closed) return Promise.resolve();
    if (this.#state === "open") return Promise.resolve();
    const opened = new Promise<void>((resolve) => this.#opened.push(resolve));
    if (this.#state === "idle") this.#connect();
    return opened;
  }

  /**
   * Ends a start begun with {@link prepare}: records that `containerId` (if it started) was
   * created under stream generation `generation`.
   */
  started(containerId: string | undefined, generation: number | undefined): void {
    this.#pendingStarts = Math.max(0, this.#pendingStarts - 1);
    if (containerId !== undefined && generation !== undefined)
      this.#startedUnder.set(containerId, generation);
    if (this.#exits.watching === 0 && this.#pendingStarts === 0) this.#scheduleLinger();
  }

  /** Forgets a container (after its cleanup). */
  forget(containerId: string): void {
    this.#startedUnder.delete(containerId);
    this.#exits.forget(containerId);
    this.#oomSeen.delete(containerId);
  }

  /** Calls `onExit` once, when the container exits or is lost. Returns an unsubscribe function. */
  watch(containerId: string, onExit: (status: ExitStatus) => void): () => void {
    // A recent exit is delivered by the registry (on the next microtask): nothing to watch.
    const known = this.#exits.has(containerId);
    const { stop } = this.#exits.watch(containerId, onExit);
    if (known) return stop;
    this.#refStream();
    if (this.#state === "open") {
      // Covered when it was created under this very stream: its death cannot have been missed.
      if (this.#startedUnder.get(containerId) !== this.#generation) void this.#reconcile([containerId]);
    } else if (this.#state === "idle") {
      this.#connect();
    }
    return stop;
  }

  /** Closes the stream and drops every watch. */
  close(): void {
    this.#closed = true;
    this.#exits.close();
    this.#disconnect();
    this.#settleOpened();
  }

  #settleOpened(): void {
    for (const resolve of this.#opened.splice(0)) resolve();
  }

  /** Keeps an unwatched stream for a while, unref'd, then closes it. */
  #scheduleLinger(): void {
    clearTimeout(this.#lingerTimer);
    this.#lingerTimer = setTimeout(() => {
      this.#lingerTimer = undefined;
      if (this.#exits.watching === 0 && this.#pendingStarts === 0) this.#disconnect();
    }, this.#options.lingerMs ?? DEFAULT_LINGER_MS);
    this.#lingerTimer.unref();
    this.#refStream();
  }

  /** A stream holds the process open only while something is watched. */
  #refStream(): void {
    const socket = (this.#stream as { socket?: { ref?: () => void; unref?: () => void } } | undefined)
      ?.socket;
    if (this.#exits.watching > 0) socket?.ref?.();
    else socket?.unref?.();
  }

  #connect(): void {
    if (this.#closed || this.#state !== "idle") return;
    this.#state = "connecting";
    clearTimeout(this.#retryTimer);
    const since = this.#lastEventTime ?? Math.floor(Date.now() / 1000) - REPLAY_SECONDS;
    const request = this.#docker.getEvents({
      since,
      filters: { type: ["container"], event: ["die", "oom", "destroy"], label: this.#options.labels },
    }) as Promise<Readable>;
    request.then(
      (stream) => {
        if (this.#closed || (this.#exits.watching === 0 && this.#pendingStarts === 0 && !this.#lingerTimer)) {
          stream.destroy();
          this.#state = "idle";
          this.#settleOpened();
          return;
        }
        this.#open(stream);
        this.#settleOpened();
      },
      (error: unknown) => {
        this.#state = "idle";
        this.#options.onError?.(error);
        this.#settleOpened();
        this.#scheduleReconnect();
      },
    );
  }

  #open(stream: Readable): void {
    this.#stream = stream;
    this.#state = "open";
    this.#generation++;
    this.#backoff = this.#options.reconnectMs.initial;
    this.#refStream();
    let buffered = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      buffered += chunk;
      let nl = buffered.indexOf("\n");
      while (nl >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) this.#onLine(line);
        nl = buffered.indexOf("\n");
      }
    });
    const dropped = () => {
      if (this.#stream !== stream) return;
      this.#stream = undefined;
      this.#state = "idle";
      this.#scheduleReconnect();
    };
    stream.on("end", dropped);
    stream.on("close", dropped);
    stream.on("error", (error) => {
      this.#options.onError?.(error);
      dropped();
    });
    // Exits that happened before this subscription (or while the engine was away).
    void this.#reconcile(this.#exits.watchedKeys());
  }

  #disconnect(): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
    const stream = this.#stream;
    this.#stream = undefined;
    if (this.#state === "open") this.#state = "idle";
    stream?.destroy();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#exits.watching === 0 || this.#retryTimer) return;
    const delay = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, this.#options.reconnectMs.max);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect();
    }, delay);
  }

  #onLine(line: string): void {
    let event: EngineEvent;
    try {
      event = JSON.parse(line) as EngineEvent;
    } catch {
      return;
    }
    const id = event.Actor?.ID ?? event.id;
    if (!id) return;
    if (typeof event.time === "number") this.#lastEventTime = event.time;
    switch (event.Action) {
      case "oom":
        this.#oomSeen.add(id);
        return;
      case "die": {
        const code = Number(event.Actor?.Attributes?.exitCode);
        const exitCode = Number.isInteger(code) ? code : null;
        if (exitCode === 137 || exitCode === null || this.#oomSeen.has(id)) {
          // Killed: by us, by the OOM killer, or by a removal behind our back. Ask.
          void this.#confirm(id, exitCode);
          return;
        }
        this.#settle(id, exitStatus(exitCode, false));
        return;
      }
      case "destroy":
        if (!this.#exits.has(id)) this.#settle(id, { exitCode: null, lost: true });
        return;
      default:
        return;
    }
  }

  #settle(id: string, status: ExitStatus): void {
    this.#oomSeen.delete(id);
    this.#exits.settle(id, status);
  }

  async #confirm(id: string, exitCode: number | null): Promise<void> {
    let status: ExitStatus | null;
    try {
      status = await this.#options.resolveExit(id);
    } catch {
      // The engine could not say; the event's own code is still the truth about the death.
      status = exitStatus(exitCode, this.#oomSeen.has(id));
    }
    if (status === null) return; // Restarted in between: not ours to report.
    if (status.oomKilled === undefined && this.#oomSeen.has(id)) status = { ...status, oomKilled: true };
    this.#settle(id, status);
  }

  /** Inspects each still-watched container and settles the exits found. */
  async #reconcile(containerIds: string[]): Promise<void> {
    await Promise.all(
      containerIds.map(async (containerId) => {
        if (!this.#exits.isWatched(containerId)) return;
        let status: ExitStatus | null;
        try {
          status = await this.#options.resolveExit(containerId);
        } catch (error) {
          // Unreachable engine: the stream is down too, and its reconnect reconciles again.
          this.#options.onError?.(error);
          return;
        }
        if (status && this.#exits.isWatched(containerId)) this.#exits.settle(containerId, status);
      }),
    );
  }
}

/** An {@link ExitStatus} for an exit code: 128 + n names its signal. */
export function exitStatus(exitCode: number | null, oomKilled: boolean): ExitStatus {
  const status: ExitStatus = { exitCode };
  const signal = signalForExitCode(exitCode);
  if (signal) status.signal = signal;
  if (oomKilled) status.oomKilled = true;
  return status;
}
