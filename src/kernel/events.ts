/**
 * Delivery of transition events: synchronous listeners (eventemitter3), a bounded
 * replay buffer for `events({ sinceSeq })`, and async iterators that never drop an
 * event silently (an iterator that falls too far behind ends with `EVENTS_OVERFLOW`).
 * @module
 */
import { EventEmitter } from "eventemitter3";
import { RuntimeKernelError } from "../errors.js";
import type { TransitionEvent, WorkloadState } from "./types.js";

/** The listener signatures of a kernel. */
export interface KernelEventMap {
  /** Every transition of every workload. */
  transition: [event: TransitionEvent];
  starting: [event: TransitionEvent];
  running: [event: TransitionEvent];
  stopping: [event: TransitionEvent];
  stopped: [event: TransitionEvent];
  destroyed: [event: TransitionEvent];
  /** A listener threw, or a backend call failed in the background (kill, cleanup, watch). */
  error: [error: Error];
}

/** Options of `kernel.events()`. */
export interface EventStreamOptions {
  /** Only this workload's events. */
  workloadId?: string;
  /** Replay retained events with a greater `seq` first (a reconnecting client misses nothing still retained). */
  sinceSeq?: number;
  /** Ends the iteration. */
  signal?: AbortSignal;
  /** How many undelivered events may wait before the iterator fails with `EVENTS_OVERFLOW`. Default 10,000. */
  highWaterMark?: number;
}

interface Subscriber {
  workloadId: string | undefined;
  push(event: TransitionEvent): void;
  end(): void;
}

/** Publishes transition events to listeners, the replay buffer and iterators. */
export class EventHub extends EventEmitter<KernelEventMap> {
  #seq = 0;
  readonly #retention: number;
  readonly #ring: (TransitionEvent | undefined)[];
  #ringNext = 0;
  readonly #subscribers = new Set<Subscriber>();

  constructor(retention: number) {
    super();
    this.#retention = retention;
    this.#ring = new Array(retention);
  }

  /** The `seq` of the last event published (0 before the first). */
  get lastSeq(): number {
    return this.#seq;
  }

  /** Assigns the next `seq` and delivers the event everywhere. */
  publish(event: Omit<TransitionEvent, "seq">): TransitionEvent {
    const full = event as TransitionEvent;
    full.seq = ++this.#seq;
    if (this.#retention > 0) {
      this.#ring[this.#ringNext] = full;
      this.#ringNext = (this.#ringNext + 1) % this.#retention;
    }
    this.#deliver("transition", full);
    this.#deliver(full.state, full);
    for (const sub of this.#subscribers) {
      if (sub.workloadId === undefined || sub.workloadId === full.workloadId) sub.push(full);
    }
    return full;
  }

  /** Reports a background fault to `error` listeners (never throws). */
  fault(error: Error): void {
    try {
      this.emit("error", error);
    } catch {
      // An error listener that throws has nowhere left to report to.
    }
  }

  #deliver(name: "transition" | WorkloadState, event: TransitionEvent): void {
    if (this.listenerCount(name) !== 0) this.emit(name, event);
  }

  /**
   * Transition listeners are guarded: one that throws is reported on `error` and neither
   * breaks a workload's lifecycle nor keeps the event from the listeners after it.
   */
  override on<E extends keyof KernelEventMap>(name: E, listener: (...args: KernelEventMap[E]) => void): this {
    return super.on(name, this.#wrap(name, listener) as never);
  }

  override once<E extends keyof KernelEventMap>(
    name: E,
    listener: (...args: KernelEventMap[E]) => void,
  ): this {
    return super.once(name, this.#wrap(name, listener) as never);
  }

  override off<E extends keyof KernelEventMap>(
    name: E,
    listener?: (...args: KernelEventMap[E]) => void,
  ): this {
    return super.off(
      name,
      (listener && name !== "error" ? (this.#guards.get(listener) ?? listener) : listener) as never,
    );
  }

  override addListener<E extends keyof KernelEventMap>(
    name: E,
    listener: (...args: KernelEventMap[E]) => void,
  ): this {
    return this.on(name, listener);
  }

  override removeListener<E extends keyof KernelEventMap>(
    name: E,
    listener?: (...args: KernelEventMap[E]) => void,
  ): this {
    return this.off(name, listener);
  }

  #wrap(name: keyof KernelEventMap, listener: Function): Function {
    return name === "error" ? listener : this.#guarded(listener);
  }

  readonly #guards = new WeakMap<Function, (...args: never[]) => void>();

  #guarded(listener: Function): (...args: never[]) => void {
    let guard = this.#guards.get(listener);
    if (!guard) {
      guard = (...args: never[]) => {
        try {
          listener(...args);
        } catch (error) {
          this.fault(error instanceof Error ? error : new Error(String(error)));
        }
      };
      this.#guards.set(listener, guard);
    }
    return guard;
  }

  /** The retained events with `seq > sinceSeq`, oldest first. */
  replay(sinceSeq: number, workloadId?: string): TransitionEvent[] {
    const out: TransitionEvent[] = [];
    for (let i = 0; i < this.#retention; i++) {
      const event = this.#ring[(this.#ringNext + i) % this.#retention];
      if (event && event.seq > sinceSeq && (workloadId === undefined || event.workloadId === workloadId)) {
        out.push(event);
      }
    }
    return out;
  }

  /** An async iterator over future (and, with `sinceSeq`, retained) events. */
  stream(options: EventStreamOptions = {}): AsyncIterableIterator<TransitionEvent> {
    const highWaterMark = options.highWaterMark ?? 10_000;
    const buffer: TransitionEvent[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    let failure: Error | undefined;
    const subscriber: Subscriber = {
      workloadId: options.workloadId,
      push: (event) => {
        if (done) return;
        if (buffer.length >= highWaterMark) {
          failure = new RuntimeKernelError(
            "EVENTS_OVERFLOW",
            `Event iterator fell ${highWaterMark} events behind; resume with sinceSeq`,
          );
          finish();
          return;
        }
        buffer.push(event);
        wake?.();
      },
      end: () => finish(),
    };
    const finish = () => {
      done = true;
      this.#subscribers.delete(subscriber);
      options.signal?.removeEventListener("abort", finish);
      wake?.();
    };
    if (options.sinceSeq !== undefined) buffer.push(...this.replay(options.sinceSeq, options.workloadId));
    this.#subscribers.add(subscriber);
    if (options.signal?.aborted) finish();
    else options.signal?.addEventListener("abort", finish, { once: true });

    const iterator: AsyncIterableIterator<TransitionEvent> = {
      next: async () => {
        for (;;) {
          const event = buffer.shift();
          if (event) return { value: event, done: false };
          if (failure) {
            const error = failure;
            failure = undefined;
            throw error;
          }
          if (done) return { value: undefined, done: true };
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      },
      return: async () => {
        finish();
        buffer.length = 0;
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** Ends every iterator (at shutdown). */
  endStreams(): void {
    for (const sub of [...this.#subscribers]) sub.end();
  }
}
