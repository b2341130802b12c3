/**
 * The one way the library's gRPC servers start listening (the runtime.v1 service, the
 * Gestalt provider and log-host endpoints): grpc-js's bind under the listening rules every
 * server of the library shares (`src/net/listen.ts`): on a unix socket, a dead socket of
 * this user is reclaimed and nothing else, the socket is 0600 whatever the umask, and it is
 * removed on release only if it is still this server's.
 * @module
 */
import type { Server, ServerCredentials } from "@grpc/grpc-js";
import { listenUnixSocket } from "../net/listen.js";
import { type GrpcAddress, grpcTarget } from "./address.js";

/** A server's listening socket. */
export interface GrpcListener {
  /** The bound TCP port (0 for a unix socket). */
  readonly port: number;
  /** Removes the socket file, if it is still the one this listener created. Call once the server is shut down. */
  release(): void;
}

/** Options of {@link listenGrpc}. */
export interface ListenGrpcOptions {
  /**
   * The socket's directory must be private to this user (created 0700, refused if another
   * user owns it or may enter it): for default locations, which nobody chose by hand.
   */
  privateDir?: boolean;
}

function bind(server: Server, target: string, credentials: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(target, credentials, (error, port) => (error ? reject(error) : resolve(port)));
  });
}

/**
 * Binds `server` on `address` with `credentials` (see the module's comment for what a unix
 * socket gets). On failure nothing is left listening or on disk.
 */
export async function listenGrpc(
  server: Server,
  address: GrpcAddress,
  credentials: ServerCredentials,
  options: ListenGrpcOptions = {},
): Promise<GrpcListener> {
  if (address.kind === "tcp") {
    const port = await bind(server, grpcTarget(address), credentials);
    return { port, release() {} };
  }
  const socket = await listenUnixSocket(address.path, (path) => bind(server, `unix:${path}`, credentials), {
    privateDir: options.privateDir ?? false,
  });
  return { port: 0, release: () => socket.release() };
}
