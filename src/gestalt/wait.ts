/**
 * The waits of a plugin's bootstrap: for a unix socket or a TCP port to accept connections,
 * for a runtime session to be ready, and for a running session to end. Each ends by its
 * signal; none starts, stops or owns anything it waits for.
 * @module
 */
import { watch } from "node:fs";
import { stat } from "node:fs/promises";
import { connect } from "node:net";
import type { RuntimeSession } from "./provider.js";

/** Resolves once `path` exists: watched with inotify, and polled every 100 ms as a backstop. */
export function waitForPath(path: string, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const dir = path.slice(0, path.lastIndexOf("/")) || "/";
    let done = false;
    const finish = (error?: unknown) => {
      if (done) return;
      done = true;
      watcher?.close();
      clearInterval(timer);
      signal.removeEventListener("abort", onAbort);
      if (error) reject(error);
      else resolve();
    };
    const check = () => {
      stat(path).then(
        () => finish(),
        () => {},
      );
    };
    const onAbort = () => finish(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    let watcher: ReturnType<typeof watch> | undefined;
    try {
      watcher = watch(dir, () => check());
      watcher.on("error", () => {});
    } catch {
      watcher = undefined;
    }
    // Some filesystems (bind mounts written from a container, overlay) do not report every
    // change to inotify: a slow poll backs the watch up.
    const timer = setInterval(check, 100);
    check();
  });
}

/** Resolves once something accepts a connection at `target`; retries refusals every 10 ms (50 ms for TCP). */
export function waitForListener(
  target: { path: string } | { host: string; port: number },
  signal: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const attempt = () => {
      if (signal.aborted) return reject(signal.reason);
      const socket = "path" in target ? connect(target.path) : connect(target.port, target.host);
      socket.once("connect", () => {
        socket.destroy();
        resolve();
      });
      socket.once("error", () => {
        socket.destroy();
        setTimeout(attempt, "path" in target ? 10 : 50);
      });
    };
    attempt();
  });
}

/**
 * Resolves once the plugin listens on its unix socket. The file appears at bind(), a moment
 * before listen(): a connection in between is refused, so the file alone is not enough.
 */
export async function waitForSocket(path: string, signal: AbortSignal): Promise<void> {
  await waitForPath(path, signal);
  await waitForListener({ path }, signal);
}

/** Resolves once something listens at `host:port` (IPv6 hosts in brackets). */
export function waitForTcp(address: string, signal: AbortSignal): Promise<void> {
  const m = /^(.*):(\d+)$/.exec(address);
  const host = (m?.[1] ?? "127.0.0.1").replace(/^\[|\]$/g, "");
  return waitForListener({ host, port: Number(m?.[2] ?? 0) }, signal);
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** `outer`, or a timeout of `ms`, whichever aborts first. */
export function withTimeout(ms: number, outer?: AbortSignal): AbortSignal {
  return outer ? AbortSignal.any([outer, AbortSignal.timeout(ms)]) : AbortSignal.timeout(ms);
}

/** Why a session that ended did: `(reason: message)`, or nothing when it gave neither. */
export function endedDetail(session: RuntimeSession): string {
  const detail = [session.stateReason, session.stateMessage].filter(Boolean).join(": ");
  return detail ? ` (${detail})` : "";
}

/** How {@link waitForSession} polls. */
export interface SessionWaitOptions {
  /** Gives up after this long. */
  timeoutMs: number;
  /** Between two GetSession calls. */
  intervalMs: number;
  /** The bound on each GetSession call. */
  callTimeoutMs: number;
  signal?: AbortSignal | undefined;
}

/**
 * Polls a session (`getSession`) from `first` until it is ready or running, and returns it
 * then. Rejects when it fails or stops (`session is failed (reason: message)`), when it is
 * still not ready after `timeoutMs`, or with the error of a poll or the signal's reason.
 */
export async function waitForSession(
  getSession: (signal: AbortSignal) => Promise<RuntimeSession>,
  first: RuntimeSession,
  options: SessionWaitOptions,
): Promise<RuntimeSession> {
  const deadline = Date.now() + options.timeoutMs;
  let session = first;
  for (;;) {
    if (session.state === "ready" || session.state === "running") return session;
    if (session.state === "failed" || session.state === "stopped") {
      throw new Error(`session is ${session.state}${endedDetail(session)}`);
    }
    if (Date.now() >= deadline) {
      throw new Error(`still ${session.state || "pending"} after ${options.timeoutMs} ms`);
    }
    await sleep(options.intervalMs, options.signal);
    session = await getSession(withTimeout(options.callTimeoutMs, options.signal));
  }
}

/**
 * Polls a running session every 100 ms until `signal` aborts; once it has failed or stopped,
 * calls `onEnd` with why (`the session became failed (...)`). Resolves when the watch ends.
 */
export async function watchSessionEnd(
  getSession: (signal: AbortSignal) => Promise<RuntimeSession>,
  signal: AbortSignal,
  onEnd: (why: Error) => void,
): Promise<void> {
  try {
    while (!signal.aborted) {
      await sleep(100, signal);
      const s = await getSession(signal).catch(() => undefined);
      if (s && (s.state === "failed" || s.state === "stopped")) {
        onEnd(new Error(`the session became ${s.state}${endedDetail(s)}`));
      }
    }
  } catch {
    // Aborted while sleeping: the watch is over.
  }
}
