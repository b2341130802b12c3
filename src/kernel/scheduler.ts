/**
 * One timer for the whole kernel. Deadlines, grace periods, retries, restarts and
 * reaping all go into one min-heap; only the earliest is ever armed on the clock.
 * With 100,000 workloads that is one timer, not 100,000.
 * @module
 */
import type { Clock } from "../clock.js";
import { InvalidSpecError } from "../errors.js";
import { MinHeap } from "../min-heap.js";

/** The latest deadline the scheduler takes, in epoch ms: the end of JavaScript's Date range. */
export const MAX_DEADLINE = 8.64e15;

/**
 * The longest delay a timer can hold (Node's, like browsers', is a signed 32-bit count of
 * milliseconds: about 24.8 days). A later deadline is armed this far ahead, and re-armed from
 * there; handing Node more makes it fire after 1 ms, which would spin.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A cancellable scheduled call. */
export interface ScheduledTask {
  cancel(): void;
}

/** A scheduled call, and its own handle: one object per task, with no closure of its own. */
class Entry implements ScheduledTask {
  readonly at: number;
  /** Insertion order, so entries due at the same time fire in the order they were scheduled. */
  readonly order: number;
  readonly fire: () => void;
  cancelled = false;
  /** The scheduler's one count-down for a task that will not fire (shared by every entry). */
  readonly #dropped: () => void;

  constructor(at: number, order: number, fire: () => void, dropped: () => void) {
    this.at = at;
    this.order = order;
    this.fire = fire;
    this.#dropped = dropped;
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.#dropped();
  }
}

/** A min-heap of due times driving a single clock timer. */
export class Scheduler {
  readonly #clock: Clock;
  readonly #heap = new MinHeap<Entry>((a, b) => a.at < b.at || (a.at === b.at && a.order < b.order));
  #order = 0;
  #timer: unknown = undefined;
  #armedAt = Number.POSITIVE_INFINITY;
  #live = 0;
  /** The entries of the tick being fired, so that `clear()` reaches them too. */
  #due: Entry[] = [];

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** How many tasks are scheduled and not cancelled. */
  get size(): number {
    return this.#live;
  }

  /**
   * Calls `fire` at epoch ms `at` (at once on the next timer tick if `at` has passed). Refuses
   * (`INVALID_SPEC`) a deadline that is not a finite time within the Date range: one NaN in
   * the heap would break its order, and every other task with it.
   */
  at(at: number, fire: () => void): ScheduledTask {
    if (typeof at !== "number" || !Number.isFinite(at) || Math.abs(at) > MAX_DEADLINE) {
      throw new InvalidSpecError(
        [
          {
            path: "deadline",
            message: `must be a finite epoch time in ms within ±${MAX_DEADLINE} (got ${at})`,
          },
        ],
        { subject: "scheduled deadline" },
      );
    }
    const entry = new Entry(at, this.#order++, fire, this.#dropped);
    this.#heap.push(entry);
    this.#live++;
    if (at < this.#armedAt) this.#arm();
    return entry;
  }

  /** A task was cancelled before it fired. */
  readonly #dropped = (): void => {
    this.#live--;
    // Cancelled entries stay in the heap until they surface; dropping the timer when
    // nothing is left keeps an idle kernel from holding the event loop open.
    if (this.#live === 0) this.#disarm();
  };

  /** Calls `fire` `ms` from now. */
  after(ms: number, fire: () => void): ScheduledTask {
    return this.at(this.#clock.now() + ms, fire);
  }

  /** Cancels everything. */
  clear(): void {
    for (const entry of this.#heap.values()) entry.cancelled = true;
    for (const entry of this.#due) entry.cancelled = true;
    this.#heap.clear();
    this.#live = 0;
    this.#disarm();
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    if (this.#live === 0) this.#heap.clear();
  }

  #arm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    // A cancelled entry on top would arm a timer for nothing, and keep an idle process awake.
    while (this.#heap.peek()?.cancelled) this.#heap.pop();
    const top = this.#heap.peek();
    if (!top) {
      this.#timer = undefined;
      this.#armedAt = Number.POSITIVE_INFINITY;
      return;
    }
    this.#armedAt = top.at;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, top.at - this.#clock.now()));
    this.#timer = this.#clock.setTimeout(() => this.#tick(), delay);
  }

  #tick(): void {
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    const due: Entry[] = [];
    this.#due = due;
    for (let top = this.#heap.peek(); top && top.at <= now; top = this.#heap.peek()) {
      this.#heap.pop();
      if (!top.cancelled) due.push(top);
    }
    this.#arm();
    for (const entry of due) {
      // A task fired earlier in this tick may have cancelled this one: cancelled never fires.
      if (entry.cancelled) continue;
      entry.cancelled = true;
      this.#live--;
      entry.fire();
    }
    this.#due = [];
  }
}
