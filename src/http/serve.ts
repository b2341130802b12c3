/**
 * `serveRuntimeHttp()`: the runtime.v1 HTTP surface on its own listener, with the same rules
 * as the gRPC service: loopback (or a unix socket) unless told otherwise, a plaintext
 * listener reachable from other machines refused without `allowInsecureRemote`, TLS from PEM
 * material, an optional bearer token. Closing drains: new requests get 503, requests in
 * flight finish (up to a bound), then the kernel is stopped or left as configured, then
 * pending callbacks get a last chance before the outbox is closed.
 * @module
 */
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { RuntimeKernel } from "../index.js";
import { checkListenSecurity, listenUnixSocket, type SocketListener } from "../net/listen.js";
import { parseAddress } from "../server/address.js";
import type { KernelOnClose, ServerTlsOptions } from "../server/serve.js";
import { createHttpSurface, type RuntimeHttpHandler, type RuntimeHttpHandlerOptions } from "./handler.js";
import type { RouteGroup } from "./router.js";

/** The address `serveRuntimeHttp` listens on when given none: loopback, Vexa's runtime port. */
export const DEFAULT_HTTP_ADDRESS = "127.0.0.1:8090";

/** Options of {@link serveRuntimeHttp}. */
export interface ServeRuntimeHttpOptions extends RuntimeHttpHandlerOptions {
  /** `HOST:PORT` (port 0 picks a free one) or `unix:PATH`. Default {@link DEFAULT_HTTP_ADDRESS}. */
  address?: string;
  /** Serve HTTPS with this certificate (and, with `ca`, require client certificates). */
  tls?: ServerTlsOptions;
  /** Allow plaintext on an address other machines can reach. Off by default. */
  allowInsecureRemote?: boolean;
  /** What closing the server does to the kernel. Default `"stop-workloads"`. */
  onClose?: KernelOnClose;
  /** How long `close()` waits for requests in flight. Default 10,000 ms. */
  drainTimeoutMs?: number;
  /** How long `close()` waits for pending callbacks before leaving them in the outbox. Default 5,000 ms. */
  flushTimeoutMs?: number;
}

/** A running HTTP surface. */
export interface RuntimeHttpServer {
  /** The bound address: `host:port` with the real port, or `unix:/path`. */
  readonly address: string;
  /** The base URL (`http://127.0.0.1:8090`); for a unix socket, `http://localhost` (dial the socket). */
  readonly url: string;
  /** The request handler behind it. */
  readonly handler: RuntimeHttpHandler;
  /** Drains, applies `onClose` to the kernel, flushes callbacks, closes. Idempotent. */
  close(options?: { onClose?: KernelOnClose }): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Serves `kernel` as runtime.v1 over HTTP/JSON (Vexa's contract). Resolves once listening.
 *
 * @example
 * ```ts
 * const server = await serveRuntimeHttp(kernel, { address: "127.0.0.1:8090" });
 * // curl -X POST localhost:8090/workloads -H 'content-type: application/json' -d '{"workloadId":"w1","profile":"default","env":{}}'
 * await server.close();
 * ```
 */
export function serveRuntimeHttp(
  kernel: RuntimeKernel,
  options: ServeRuntimeHttpOptions = {},
): Promise<RuntimeHttpServer> {
  return serveHttpSurface(kernel, options, []);
}

/** {@link serveRuntimeHttp} with more route groups mounted (for surfaces layered on runtime.v1). */
export async function serveHttpSurface(
  kernel: RuntimeKernel,
  options: ServeRuntimeHttpOptions,
  extraGroups: readonly RouteGroup[],
): Promise<RuntimeHttpServer> {
  const {
    address: text = DEFAULT_HTTP_ADDRESS,
    tls,
    allowInsecureRemote,
    onClose: defaultOnClose = "stop-workloads",
    drainTimeoutMs = 10_000,
    flushTimeoutMs = 5_000,
    ...handlerOptions
  } = options;
  const address = parseAddress(text);
  checkListenSecurity(address, {
    secure: tls !== undefined,
    allowInsecureRemote,
  });
  const handler = createHttpSurface(kernel, handlerOptions, extraGroups);
  const server: Server = tls
    ? createHttpsServer(
        {
          cert: tls.cert,
          key: tls.key,
          ca: tls.ca,
          requestCert: tls.ca !== undefined,
          rejectUnauthorized: tls.requireClientCert ?? tls.ca !== undefined,
        },
        handler,
      )
    : createHttpServer(handler);
  let inFlight = 0;
  const idle = new Set<() => void>();
  server.on("request", (_req, res) => {
    inFlight++;
    res.once("close", () => {
      if (--inFlight === 0) for (const resolve of [...idle]) resolve();
    });
  });
  const listen = (...target: [path: string] | [port: number, host: string]) =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(...(target as [number, string]), () => {
        server.off("error", reject);
        resolve();
      });
    });
  let socket: SocketListener | undefined;
  try {
    // Whoever can connect can run workloads as this user: a unix socket is the user's alone.
    if (address.kind === "unix") socket = await listenUnixSocket(address.path, (path) => listen(path));
    else await listen(address.port, address.host);
  } catch (error) {
    server.close();
    await handler.close({ flushTimeoutMs: 0 });
    throw error;
  }
  server.on("error", (error) => handler.report(error));

  const bound = server.address();
  const port = typeof bound === "object" && bound !== null ? bound.port : 0;
  const host = address.kind !== "tcp" ? "" : address.host.includes(":") ? `[${address.host}]` : address.host;
  const scheme = tls ? "https" : "http";
  const listenAddress = address.kind === "unix" ? `unix:${address.path}` : `${host}:${port}`;
  const url = address.kind === "unix" ? `${scheme}://localhost` : `${scheme}://${host}:${port}`;

  let closed: Promise<void> | undefined;
  const close = (closeOptions: { onClose?: KernelOnClose } = {}): Promise<void> => {
    closed ??= (async () => {
      handler.refuseNewRequests();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, drainTimeoutMs);
          function done() {
            clearTimeout(timer);
            idle.delete(done);
            resolve();
          }
          idle.add(done);
        });
      }
      server.closeAllConnections();
      await stopped;
      socket?.release();
      const onClose = closeOptions.onClose ?? defaultOnClose;
      if (onClose === "stop-workloads") await kernel.shutdown();
      else if (onClose === "leave-running") await kernel.shutdown({ leaveRunning: true });
      await handler.close({ flushTimeoutMs });
    })();
    return closed;
  };
  return { address: listenAddress, url, handler, close, [Symbol.asyncDispose]: () => close() };
}
