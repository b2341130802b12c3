/**
 * A clock that moves only when the test moves it, so tests of idle TTLs, lifetimes,
 * grace periods and backoffs run instantly and deterministically.
 * @module
 */
import type { Clock } from "../clock.js";

interface Timer {
  at: number;
  order: number;
  callback: () => void;
}

/** Lets pending promise callbacks (and their follow-ups) run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A manual {@link Clock}. `await clock.advance(ms)` fires every timer due in that span,
 * in time order, letting promise callbacks run after each one.
 *
 * @example
 * ```ts
 * const clock = new ManualClock();
 * const kernel = createRuntimeKernel({ backend: new FakeBackend({ clock }), clock, profiles });
 * await kernel.create({ workloadId: "w1", profile: "agent" });
 * await clock.advance(300_000); // the idle TTL passes: w1 is stopped with idle_timeout
 * ```
 */
export class ManualClock implements Clock {
  #now: number;
  #order = 0;
  readonly #timers = new Set<Timer>();

  /** Starts at `start` epoch ms (default 2026-01-01T00:00:00Z, so ages are easy to read). */
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const timer: Timer = { at: this.#now + Math.max(0, ms), order: this.#order++, callback };
    this.#timers.add(timer);
    return timer;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as Timer);
  }

  /** How many timers are pending. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing due timers in order and settling promises after each. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await settle();
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.#timers) {
        if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.order < next.order))) next = t;
      }
      if (!next) break;
      this.#timers.delete(next);
      this.#now = Math.max(this.#now, next.at);
      next.callback();
      await settle();
    }
    this.#now = end;
    await settle();
  }

  /** Fires every pending timer, however far ahead, settling promises after each (bounded by `maxSteps`). */
  async runAll(maxSteps = 10_000): Promise<void> {
    for (let i = 0; i < maxSteps && this.#timers.size > 0; i++) {
      let next: Timer | undefined;
      for (const t of this.#timers) if (!next || t.at < next.at) next = t;
      if (!next) break;
      await this.advance(next.at - this.#now);
    }
  }
}
