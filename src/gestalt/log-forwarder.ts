/**
 * Forwards a session's lines to a runtime log host in order, batching what arrives while a
 * call is in flight. It owns its queue only; a log host that fails loses lines, never the plugin.
 * @module
 */
import type { RuntimeLogEntry, RuntimeLogHost } from "./provider.js";

/** Appends lines to a log host in order, batching whatever arrives while a call is in flight. */
export class LogForwarder {
  #queue: RuntimeLogEntry[] = [];
  #busy = false;
  #seq = 0;
  constructor(
    private readonly host: RuntimeLogHost,
    private readonly sessionId: string,
  ) {}
  push(stream: RuntimeLogEntry["stream"], message: string, at?: number): void {
    this.#queue.push({ stream, message, observedAt: new Date(at ?? Date.now()), sourceSeq: ++this.#seq });
    if (!this.#busy) void this.#flush();
  }
  async #flush(): Promise<void> {
    this.#busy = true;
    while (this.#queue.length) {
      const logs = this.#queue.splice(0, 500);
      // A log host that cannot take the lines must not break the plugin: drop them.
      await this.host.appendLogs({ sessionId: this.sessionId, logs }).catch(() => {});
    }
    this.#busy = false;
  }
}
