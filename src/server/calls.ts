/**
 * How the runtime.v1 server serves one call, whatever the method: the gate (shutting down,
 * bearer token), a unary call answered exactly once (by the kernel, or by the drain timeout),
 * a streaming call that respects the client's flow control. It owns the calls in flight, so
 * that closing can end the streams and cut what is left; it must not know runtime.v1's
 * methods (`serve.ts` maps those onto the kernel).
 * @module
 */
import type { Metadata, ServerUnaryCall, ServerWritableStream, sendUnaryData } from "@grpc/grpc-js";
import { isRuntimeKernelError } from "../errors.js";
import { decodeFailureOf } from "../grpc/decode.js";
import { GrpcStatus, type GrpcStatusCode, toServiceStatus } from "../grpc/status.js";

/** A grpc-js unary handler. */
export type Unary<Req, Res> = (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void;
/** A grpc-js server-streaming handler. */
export type Streaming<Req, Res> = (call: ServerWritableStream<Req, Res>) => void;

/** Told about a failure that is not the kernel's answer to a call. */
export type ReportError = (error: unknown, context: { method: string }) => void;

/** The calls one server is serving, and the rules each is served by. */
export class ServedCalls {
  /** Set by {@link close}: new calls are refused, and streams that end say so. */
  #closing = false;
  readonly #streams = new Set<{ abort: AbortController; call: ServerWritableStream<unknown, unknown> }>();
  /** Unary calls awaiting the kernel, each with the function that fails it at the drain timeout. */
  readonly #pending = new Set<() => void>();
  readonly #authorized: (metadata: Metadata) => boolean;
  readonly #report: ReportError;

  constructor(authorized: (metadata: Metadata) => boolean, report: ReportError) {
    this.#authorized = authorized;
    this.#report = report;
  }

  /** A unary handler: `handler`'s result is the answer, a thrown error its status. */
  unary<Req, Res>(method: string, handler: (request: Req) => Promise<Res> | Res): Unary<Req, Res> {
    const report = this.#report;
    const pending = this.#pending;
    return (call, callback) => {
      const refused = this.#gate(call.metadata);
      if (refused) return callback(refused);
      // Settled once: by the kernel's answer, or by close() when the drain timeout cuts it.
      let settled = false;
      const settle: sendUnaryData<Res> = (error, response) => {
        if (settled) return;
        settled = true;
        pending.delete(cut);
        try {
          callback(error, response);
        } catch (failure) {
          // grpc-js could not send it (a response it cannot encode): answer with a bare status.
          report(failure, { method });
          try {
            callback({ code: GrpcStatus.INTERNAL, details: "internal error: the answer could not be sent" });
          } catch {
            // The call is gone; nothing more to tell.
          }
        }
      };
      const cut = () =>
        settle({
          code: GrpcStatus.UNAVAILABLE,
          details: "runtime-kernel server shut down before the call finished",
        });
      pending.add(cut);
      let result: Promise<Res>;
      try {
        const undecodable = decodeFailureOf(call.request);
        if (undecodable) throw undecodable;
        result = Promise.resolve(handler(call.request));
      } catch (error) {
        result = Promise.reject(error);
      }
      result
        .then(
          (response) => settle(null, response),
          (error: unknown) => {
            if (!isRuntimeKernelError(error)) report(error, { method });
            settle(toServiceStatus(error));
          },
        )
        .catch((error: unknown) => report(error, { method }));
    };
  }

  /** A streaming handler: each item `source` yields, encoded, until it ends, the client cancels or the server closes. */
  streaming<Req, Item, Res>(
    method: string,
    source: (request: Req, signal: AbortSignal) => AsyncIterable<Item>,
    encode: (item: Item) => Res,
    /** Initial metadata, taken right before `source` subscribes. */
    headers?: () => Metadata,
  ): Streaming<Req, Res> {
    const report = this.#report;
    return (call) => {
      const refused = this.#gate(call.metadata);
      if (refused) {
        call.emit("error", refused);
        return;
      }
      const abort = new AbortController();
      const entry = { abort, call: call as ServerWritableStream<unknown, unknown> };
      this.#streams.add(entry);
      call.on("cancelled", () => abort.abort());
      (async () => {
        try {
          const undecodable = decodeFailureOf(call.request);
          if (undecodable) throw undecodable;
          if (headers) call.sendMetadata(headers());
          for await (const item of source(call.request, abort.signal)) {
            if (abort.signal.aborted) break;
            // Respect the client's flow control: a slow reader holds the kernel iterator, whose
            // own bound ends it with EVENTS_OVERFLOW rather than buffering without limit here.
            if (!call.write(encode(item))) await drainedOrAborted(call, abort.signal);
          }
          if (this.#closing && abort.signal.aborted) {
            call.emit("error", {
              code: GrpcStatus.UNAVAILABLE,
              details: "runtime-kernel server is shutting down",
            });
          } else if (!call.cancelled) call.end();
        } catch (error) {
          if (!isRuntimeKernelError(error)) report(error, { method });
          if (!call.cancelled) call.emit("error", toServiceStatus(error));
        } finally {
          this.#streams.delete(entry);
        }
      })().catch((error: unknown) => report(error, { method }));
    };
  }

  /**
   * Refuses new calls and ends every open stream: streams never end by themselves, so their
   * clients reconnect elsewhere or later. Unary calls in flight go on (see {@link cutPending}).
   */
  close(): void {
    this.#closing = true;
    for (const stream of this.#streams) stream.abort.abort();
  }

  /**
   * The calls being served now: unary calls awaiting their answer, and open streams. Every
   * call leaves it once answered, failed, cut, cancelled or ended, so a long-lived server
   * holds nothing for the calls it has finished.
   */
  get inFlight(): { unary: number; streams: number } {
    return { unary: this.#pending.size, streams: this.#streams.size };
  }

  /** Answers every unary call still waiting with UNAVAILABLE, a status a client can act on. */
  cutPending(): void {
    for (const cut of [...this.#pending]) cut();
  }

  /** Why a call may not proceed (shutting down, bad token), or undefined. */
  #gate(metadata: Metadata): { code: GrpcStatusCode; details: string } | undefined {
    if (this.#closing)
      return { code: GrpcStatus.UNAVAILABLE, details: "runtime-kernel server is shutting down" };
    if (!this.#authorized(metadata)) {
      return { code: GrpcStatus.UNAUTHENTICATED, details: "missing or wrong bearer token" };
    }
    return undefined;
  }
}

/** Resolves when `call` can take more writes, or `signal` aborts. */
function drainedOrAborted(call: ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      call.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    call.on("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}
