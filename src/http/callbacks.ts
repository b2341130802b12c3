/**
 * Which workload's transitions go where. A create with a `callbackUrl` registers the
 * receiver just before the kernel starts the run, so the run's first event (`starting`)
 * already goes to it; the registration is persisted with the outbox, so a restarted
 * `serve` keeps sending a recovered workload's events to the same place. It ends when the
 * kernel forgets the workload (destroyed, with no new run coming); a restart by the
 * profile's policy keeps it.
 * @module
 */
import { InvalidSpecError, type RuntimeKernel, type TransitionEvent } from "../index.js";
import { isHostAllowed } from "../net/egress-proxy.js";
import { eventToWire } from "./convert.js";
import type { CallbackOutbox } from "./outbox.js";

/** Routes a kernel's transitions into an outbox. */
export class KernelCallbacks {
  readonly #kernel: RuntimeKernel;
  readonly #outbox: CallbackOutbox;
  /** Receivers asked for by creates in flight, taken by the run's first event. */
  readonly #expected = new Map<string, { url: string | undefined; traceId: string }>();
  readonly #listener = (event: TransitionEvent) => this.#onTransition(event);
  readonly #allowedHosts: string[] | undefined;

  constructor(kernel: RuntimeKernel, outbox: CallbackOutbox, allowedHosts?: string[]) {
    this.#kernel = kernel;
    this.#outbox = outbox;
    this.#allowedHosts = allowedHosts;
    kernel.on("transition", this.#listener);
  }

  /**
   * Runs `create` with `url` (or no receiver at all) registered for the run it starts. A
   * create that starts no run (the workload is live: an idempotent touch) changes nothing.
   * A `url` whose host the allow-list does not name is refused before `create` runs.
   */
  async creating<T>(
    workloadId: string,
    url: string | undefined,
    traceId: string,
    create: () => Promise<T>,
  ): Promise<T> {
    if (url !== undefined && this.#allowedHosts !== undefined) this.#checkHost(url);
    const expectation = { url, traceId };
    this.#expected.set(workloadId, expectation);
    try {
      return await create();
    } finally {
      if (this.#expected.get(workloadId) === expectation) this.#expected.delete(workloadId);
    }
  }

  #checkHost(url: string): void {
    // WHATWG URL: brackets around an IPv6 literal, which no allow-list entry has.
    const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
    if (isHostAllowed(host, { allowedHosts: this.#allowedHosts, defaultAction: "deny" })) return;
    throw new InvalidSpecError(
      [{ path: "callbackUrl", message: `host "${host}" is not one this server sends callbacks to` }],
      { subject: "workload spec" },
    );
  }

  /** Stops routing (the outbox keeps what it holds). */
  close(): void {
    this.#kernel.off("transition", this.#listener);
  }

  #onTransition(event: TransitionEvent): void {
    const id = event.workloadId;
    if (event.from === null && event.state === "starting") {
      const expected = this.#expected.get(id);
      if (expected) {
        this.#expected.delete(id);
        if (expected.url === undefined) this.#outbox.unwatch(id);
        else this.#outbox.watch(id, expected.url, expected.traceId);
      }
    }
    this.#outbox.enqueue(id, JSON.stringify(eventToWire(event)), event.traceId);
    if (event.state === "destroyed") {
      // The kernel decides right after this event whether a new run follows (a restart, a
      // re-create): look once it has.
      queueMicrotask(() => {
        if (this.#kernel.get(id) === undefined && !this.#expected.has(id)) this.#outbox.unwatch(id);
      });
    }
  }
}
