/**
 * The host's log host: keeps the last lines each session's plugin wrote, so the host can
 * quote them in a start error and show them to an operator.
 * @module
 */
import { BoundedMap } from "../bounded-map.js";
import type { RuntimeLogEntry, RuntimeLogHost } from "./provider.js";

/** A {@link RuntimeLogHost} that keeps the last `linesPerSession` lines of each session. */
export class SessionLogBuffer implements RuntimeLogHost {
  /** Each session's lines; the oldest session's are forgotten first past `maxSessions`. */
  readonly #lines: BoundedMap<string, { entries: RuntimeLogEntry[]; lastSeq: number }>;
  readonly #linesPerSession: number;

  constructor(options: { linesPerSession?: number; maxSessions?: number } = {}) {
    this.#linesPerSession = options.linesPerSession ?? 200;
    this.#lines = new BoundedMap({ limit: options.maxSessions ?? 1_000 });
  }

  /** Appends a provider's lines; answers the last `sourceSeq` kept. */
  async appendLogs(request: { sessionId: string; logs: RuntimeLogEntry[] }): Promise<{ lastSeq: number }> {
    let buffer = this.#lines.get(request.sessionId);
    if (!buffer) {
      buffer = { entries: [], lastSeq: 0 };
      this.#lines.set(request.sessionId, buffer);
    }
    for (const entry of request.logs) {
      buffer.entries.push(entry);
      if (entry.sourceSeq > buffer.lastSeq) buffer.lastSeq = entry.sourceSeq;
    }
    if (buffer.entries.length > this.#linesPerSession)
      buffer.entries.splice(0, buffer.entries.length - this.#linesPerSession);
    return { lastSeq: buffer.lastSeq };
  }

  /** The last `n` lines of a session (all kept lines when `n` is absent). */
  tail(sessionId: string, n?: number): RuntimeLogEntry[] {
    const entries = this.#lines.get(sessionId)?.entries ?? [];
    return n === undefined ? [...entries] : entries.slice(-n);
  }

  /** Forgets a session's lines. */
  forget(sessionId: string): void {
    this.#lines.delete(sessionId);
  }
}
