/**
 * Backpressure on `backend.start`: at most `limit` starts run at once; the rest wait,
 * served round-robin across owners so one busy owner cannot starve the others.
 * @module
 */

/** A place in the queue; `grant` is called once when the slot is granted. */
export interface StartTicket {
  readonly owner: string;
  grant: () => void;
}

/** A FIFO with O(1) shift (Array#shift is O(n), and 100,000 queued starts are realistic). */
class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;
  get length(): number {
    return this.#items.length - this.#head;
  }
  push(item: T): void {
    this.#items.push(item);
  }
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
  remove(item: T): boolean {
    const i = this.#items.indexOf(item, this.#head);
    if (i < 0) return false;
    this.#items.splice(i, 1);
    return true;
  }
}

/** A fair, bounded start queue. */
export class StartQueue {
  readonly #limit: number;
  #running = 0;
  /** Per-owner FIFO queues; the Map's order is the round-robin order. */
  readonly #waiting = new Map<string, Fifo<StartTicket>>();

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Starts in flight. */
  get running(): number {
    return this.#running;
  }

  /** Starts waiting for a slot. */
  get waiting(): number {
    let n = 0;
    for (const q of this.#waiting.values()) n += q.length;
    return n;
  }

  /** Asks for a slot; `ticket.grant()` runs synchronously if one is free, else later. */
  request(ticket: StartTicket): void {
    if (this.#running < this.#limit && this.#waiting.size === 0) {
      this.#running++;
      ticket.grant();
      return;
    }
    let queue = this.#waiting.get(ticket.owner);
    if (!queue) {
      queue = new Fifo();
      this.#waiting.set(ticket.owner, queue);
    }
    queue.push(ticket);
    this.#drain();
  }

  /** Withdraws a ticket that has not been granted. Returns whether it was waiting. */
  withdraw(ticket: StartTicket): boolean {
    const queue = this.#waiting.get(ticket.owner);
    if (!queue?.remove(ticket)) return false;
    if (queue.length === 0) this.#waiting.delete(ticket.owner);
    return true;
  }

  /** Frees a granted slot. */
  release(): void {
    this.#running--;
    this.#drain();
  }

  #drain(): void {
    while (this.#running < this.#limit && this.#waiting.size > 0) {
      const [owner, queue] = this.#waiting.entries().next().value as [string, Fifo<StartTicket>];
      const ticket = queue.shift() as StartTicket;
      // Rotate: the owner just served goes to the back of the round.
      this.#waiting.delete(owner);
      if (queue.length > 0) this.#waiting.set(owner, queue);
      this.#running++;
      ticket.grant();
    }
  }
}
