/**
 * Durable callbacks. Each transition of a workload that has a `callbackUrl` becomes an
 * entry in the outbox, written to its file before anything else happens, and POSTed to the
 * receiver in order, per workload: the next event of a workload waits until the previous one
 * is acknowledged (any 2xx or 3xx answer) or dropped. A failed attempt is retried after an
 * exponential backoff with jitter, until the receiver acknowledges or the entry exceeds its
 * budget (attempts, or age since it was enqueued); then it is dropped and reported as a
 * `CALLBACK_DROPPED` error, and the workload's next event goes on.
 *
 * Workloads never wait for each other: each has its own queue and timer, and each receiver
 * (origin) has its own bound on concurrent requests, so a receiver that is down or hangs
 * holds up only its own deliveries. Delivery is at least once: an acknowledgement lost in a
 * crash means the event is sent again after the restart, with the same `X-Runtime-Event-Id`.
 * @module
 */
import { randomUUID } from "node:crypto";
import { type Clock, systemClock } from "../clock.js";
import { CallbackDroppedError, RuntimeKernelError } from "../errors.js";
import { type CallbackPoster, createCallbackPoster } from "./callback-post.js";
import { OutboxJournal, type OutboxRecord } from "./outbox-journal.js";
import { CALLBACK_HEADERS, signCallback } from "./signature.js";

/** How callbacks are kept and delivered. */
export interface CallbackOptions {
  /**
   * The outbox file (append-only JSON lines, private to this user). Without one the outbox
   * lives in memory only, and what is undelivered when the process ends is lost.
   */
  outboxPath?: string;
  /** Signs every attempt (`X-Runtime-Signature`); read it from a file, never from a command line. */
  signingSecret?: string | Buffer;
  /** Drop an event after this many failed attempts (counted within one process's life); 0: no limit. Default 0. */
  maxAttempts?: number;
  /** Drop an event still unacknowledged this long after it was enqueued (this bound survives restarts). Default 24 h. */
  maxAgeMs?: number;
  /** The first retry's delay; each further one doubles, with jitter. Default 1,000 ms. */
  initialBackoffMs?: number;
  /** The longest delay between two attempts. Default 60,000 ms. */
  maxBackoffMs?: number;
  /** How long one attempt may take before it counts as failed. Default 10,000 ms. */
  timeoutMs?: number;
  /** Concurrent requests to one receiver (scheme, host and port). Default 8. */
  maxConcurrentPerReceiver?: number;
  /**
   * The hosts a `callbackUrl` may name: exact hostnames or IPv4 addresses, or `*.suffix` for
   * any subdomain (as egress allow-lists). Set, a create naming another host is refused (400,
   * `INVALID_SPEC` naming `callbackUrl`) before anything starts. Unset, any host: this server
   * then POSTs wherever a caller asks, its own network included; set it whenever callers are
   * not trusted with that.
   */
  allowedHosts?: string[];
}

/** What the outbox reports about a delivery, for logs. */
export interface CallbackLogEntry {
  event: "callback_delivered" | "callback_failed" | "callback_dropped";
  workloadId: string;
  eventId: string;
  traceId?: string;
  /** The receiver, without query or credentials. */
  receiver: string;
  attempt: number;
  status?: number;
  error?: string;
  /** For `callback_failed`: when the next attempt is due, in ms. */
  retryInMs?: number;
}

interface Entry {
  id: string;
  workloadId: string;
  url: string;
  body: string;
  traceId?: string;
  /** Epoch ms at which it was enqueued. */
  at: number;
  attempts: number;
}

interface Queue {
  workloadId: string;
  entries: Entry[];
  busy: boolean;
  retry: unknown;
}

interface Receiver {
  active: number;
  waiting: Set<Queue>;
}

/** A receiver's name for logs and errors: its origin and path, never its query or credentials. */
export function receiverOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return "(invalid URL)";
  }
}

/** Compact once this many settled lines are in the file and they outnumber the live ones. */
const COMPACT_AFTER = 1_000;

/** The callback outbox. Internal to the HTTP surface; see the module comment. */
export class CallbackOutbox {
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #options: Required<Omit<CallbackOptions, "outboxPath" | "signingSecret" | "allowedHosts">>;
  readonly #secret: string | Buffer | undefined;
  readonly #post: CallbackPoster;
  readonly #closePoster: () => void;
  readonly #journal: OutboxJournal | undefined;
  readonly #onError: (error: Error) => void;
  readonly #log: (entry: CallbackLogEntry) => void;
  readonly #watches = new Map<string, { url: string; traceId?: string }>();
  readonly #queues = new Map<string, Queue>();
  readonly #receivers = new Map<string, Receiver>();
  readonly #idle = new Set<() => void>();
  #pending = 0;
  /** Lines in the file that no longer matter (settled events, replaced or ended watches). */
  #dead = 0;
  #writable = true;
  #closed = false;

  constructor(
    options: CallbackOptions & {
      clock?: Clock;
      random?: () => number;
      post?: CallbackPoster;
      onError?: (error: Error) => void;
      log?: (entry: CallbackLogEntry) => void;
    } = {},
  ) {
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#options = {
      maxAttempts: options.maxAttempts ?? 0,
      maxAgeMs: options.maxAgeMs ?? 24 * 60 * 60 * 1000,
      initialBackoffMs: options.initialBackoffMs ?? 1_000,
      maxBackoffMs: options.maxBackoffMs ?? 60_000,
      timeoutMs: options.timeoutMs ?? 10_000,
      maxConcurrentPerReceiver: options.maxConcurrentPerReceiver ?? 8,
    };
    this.#secret = options.signingSecret;
    this.#onError = options.onError ?? (() => {});
    this.#log = options.log ?? (() => {});
    if (options.post) {
      this.#post = options.post;
      this.#closePoster = () => {};
    } else {
      const poster = createCallbackPoster({ maxSocketsPerOrigin: this.#options.maxConcurrentPerReceiver });
      this.#post = poster.post;
      this.#closePoster = poster.destroy;
    }
    if (options.outboxPath !== undefined) {
      const { journal, records } = OutboxJournal.open(options.outboxPath, (line, reason) =>
        this.#onError(
          new RuntimeKernelError("BACKEND_ERROR", `${options.outboxPath}:${line} skipped: ${reason}`),
        ),
      );
      this.#journal = journal;
      this.#replay(records);
    }
  }

  /** How many events wait for delivery. */
  get pending(): number {
    return this.#pending;
  }

  /** Whether the outbox file took the last write (false: entries live in memory only until it does). */
  get writable(): boolean {
    return this.#writable;
  }

  /** The receiver and trace id registered for a workload, if any. */
  watching(workloadId: string): { url: string; traceId?: string } | undefined {
    return this.#watches.get(workloadId);
  }

  /** Sends the workload's future events to `url`. */
  watch(workloadId: string, url: string, traceId?: string): void {
    if (this.#closed) return;
    const previous = this.#watches.get(workloadId);
    if (previous && previous.url === url && previous.traceId === traceId) return;
    if (previous) this.#dead++;
    this.#watches.set(workloadId, { url, traceId });
    this.#write({ t: "watch", workloadId, url, traceId });
  }

  /** Stops sending the workload's events (what is already enqueued is still delivered). */
  unwatch(workloadId: string): void {
    if (this.#closed || !this.#watches.delete(workloadId)) return;
    this.#dead += 2;
    this.#write({ t: "unwatch", workloadId });
  }

  /**
   * Enqueues `body` (a RuntimeEvent, as JSON) for the workload's receiver, if it has one;
   * returns the event id, or undefined when nobody watches the workload.
   */
  enqueue(workloadId: string, body: string, traceId?: string): string | undefined {
    const watch = this.#watches.get(workloadId);
    if (!watch || this.#closed) return undefined;
    const trace = traceId ?? watch.traceId;
    const entry: Entry = {
      id: randomUUID(),
      workloadId,
      url: watch.url,
      body,
      traceId: trace,
      at: this.#clock.now(),
      attempts: 0,
    };
    const { attempts: _, ...record } = entry;
    // Queued first, so that a compaction triggered by this very write keeps the entry.
    this.#push(entry);
    this.#write({ t: "event", ...record });
    return entry.id;
  }

  /**
   * Resolves true once nothing is pending, or false after `timeoutMs` of real time (a bound
   * on a shutdown, not a retry delay: it never waits on an injected clock).
   */
  flush(timeoutMs: number): Promise<boolean> {
    if (this.#pending === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (value: boolean) => {
        this.#idle.delete(onIdle);
        clearTimeout(timer);
        resolve(value);
      };
      const onIdle = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#idle.add(onIdle);
    });
  }

  /** Stops delivering and closes the file; what is pending stays in it for the next start. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const queue of this.#queues.values()) {
      if (queue.retry !== undefined) this.#clock.clearTimeout(queue.retry);
    }
    this.#closePoster();
    this.#journal?.close();
  }

  // ── delivery ──────────────────────────────────────────────────────────────

  #push(entry: Entry): void {
    let queue = this.#queues.get(entry.workloadId);
    if (!queue) {
      queue = { workloadId: entry.workloadId, entries: [], busy: false, retry: undefined };
      this.#queues.set(entry.workloadId, queue);
    }
    queue.entries.push(entry);
    this.#pending++;
    this.#kick(queue);
  }

  #kick(queue: Queue): void {
    if (this.#closed || queue.busy || queue.retry !== undefined) return;
    const entry = queue.entries[0];
    if (!entry) return;
    const receiver = this.#receiver(entry.url);
    if (receiver.active >= this.#options.maxConcurrentPerReceiver) {
      receiver.waiting.add(queue);
      return;
    }
    receiver.active++;
    queue.busy = true;
    void this.#attempt(queue, entry, receiver);
  }

  #receiver(url: string): Receiver {
    let origin: string;
    try {
      origin = new URL(url).origin;
    } catch {
      origin = url;
    }
    let receiver = this.#receivers.get(origin);
    if (!receiver) {
      receiver = { active: 0, waiting: new Set() };
      this.#receivers.set(origin, receiver);
    }
    return receiver;
  }

  async #attempt(queue: Queue, entry: Entry, receiver: Receiver): Promise<void> {
    entry.attempts++;
    let status: number | undefined;
    let failure: string | undefined;
    try {
      status = await this.#post(
        new URL(entry.url),
        entry.body,
        this.#headers(entry),
        this.#options.timeoutMs,
      );
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error);
    }
    receiver.active--;
    queue.busy = false;
    // The freed slot goes to the receiver's longest waiting workload.
    for (const waiting of receiver.waiting) {
      receiver.waiting.delete(waiting);
      this.#kick(waiting);
      break;
    }
    if (this.#closed) return;
    const base = {
      workloadId: entry.workloadId,
      eventId: entry.id,
      ...(entry.traceId !== undefined ? { traceId: entry.traceId } : {}),
      receiver: receiverOf(entry.url),
      attempt: entry.attempts,
      ...(status !== undefined ? { status } : {}),
    };
    if (status !== undefined && status >= 200 && status < 400) {
      this.#log({ event: "callback_delivered", ...base });
      this.#settle(queue);
    } else {
      const reason = failure ?? `the receiver answered ${status}`;
      const { maxAttempts, maxAgeMs } = this.#options;
      const age = this.#clock.now() - entry.at;
      if ((maxAttempts > 0 && entry.attempts >= maxAttempts) || age >= maxAgeMs) {
        this.#log({ event: "callback_dropped", ...base, error: reason });
        this.#settle(queue);
        this.#onError(
          new CallbackDroppedError(
            entry.workloadId,
            entry.id,
            entry.attempts,
            `Callback of "${entry.workloadId}" to ${base.receiver} dropped after ${entry.attempts} attempt(s) over ${Math.round(age / 1000)} s: ${reason}`,
          ),
        );
      } else {
        const delay = this.#backoff(entry.attempts);
        this.#log({ event: "callback_failed", ...base, error: reason, retryInMs: delay });
        queue.retry = this.#clock.setTimeout(() => {
          queue.retry = undefined;
          this.#kick(queue);
        }, delay);
        return;
      }
    }
    this.#kick(queue);
  }

  /** Exponential from the initial delay, capped, then jittered to between half and all of it. */
  #backoff(attempts: number): number {
    const { initialBackoffMs, maxBackoffMs } = this.#options;
    const step = Math.min(maxBackoffMs, initialBackoffMs * 2 ** Math.min(attempts - 1, 30));
    return Math.round(step / 2 + this.#random() * (step / 2));
  }

  #headers(entry: Entry): Record<string, string> {
    const headers: Record<string, string> = {
      "user-agent": "runtime-kernel",
      [CALLBACK_HEADERS.eventId]: entry.id,
    };
    if (entry.traceId !== undefined) headers[CALLBACK_HEADERS.traceId] = entry.traceId;
    if (this.#secret !== undefined) {
      const timestamp = Math.floor(this.#clock.now() / 1000);
      headers[CALLBACK_HEADERS.timestamp] = String(timestamp);
      headers[CALLBACK_HEADERS.signature] = signCallback(this.#secret, timestamp, entry.body);
    }
    return headers;
  }

  /** The head of the queue is done (acknowledged or dropped). */
  #settle(queue: Queue): void {
    const entry = queue.entries.shift() as Entry;
    this.#pending--;
    this.#dead += 2;
    this.#write({ t: "done", id: entry.id });
    if (queue.entries.length === 0) this.#queues.delete(queue.workloadId);
    if (this.#pending === 0) for (const onIdle of [...this.#idle]) onIdle();
  }

  // ── the file ──────────────────────────────────────────────────────────────

  #write(record: OutboxRecord): void {
    if (!this.#journal) return;
    try {
      this.#journal.append(record);
      if (this.#dead >= COMPACT_AFTER && this.#dead > this.#watches.size + this.#pending) this.#compact();
      this.#writable = true;
    } catch (error) {
      // The entry stays in memory and is delivered while this process lives; health says degraded.
      if (this.#writable) {
        this.#onError(
          new RuntimeKernelError(
            "RESOURCE_EXHAUSTED",
            `Cannot write the callback outbox ${this.#journal.path}: ${(error as Error).message}`,
          ),
        );
      }
      this.#writable = false;
    }
  }

  #compact(): void {
    const records: OutboxRecord[] = [];
    for (const [workloadId, watch] of this.#watches) records.push({ t: "watch", workloadId, ...watch });
    for (const queue of this.#queues.values()) {
      for (const { attempts: _, ...entry } of queue.entries) records.push({ t: "event", ...entry });
    }
    this.#journal?.rewrite(records);
    this.#dead = 0;
  }

  /** Rebuilds watches and pending entries from the file, in its order. */
  #replay(records: OutboxRecord[]): void {
    const entries = new Map<string, Entry>();
    for (const record of records) {
      switch (record.t) {
        case "watch":
          if (this.#watches.has(record.workloadId)) this.#dead++;
          this.#watches.set(record.workloadId, { url: record.url, traceId: record.traceId });
          break;
        case "unwatch":
          if (this.#watches.delete(record.workloadId)) this.#dead += 2;
          break;
        case "event": {
          const { t: _, ...entry } = record;
          entries.set(record.id, { ...entry, attempts: 0 });
          break;
        }
        case "done":
          if (entries.delete(record.id)) this.#dead += 2;
          break;
      }
    }
    for (const entry of entries.values()) this.#push(entry);
    if (this.#dead >= COMPACT_AFTER) this.#compact();
  }
}
