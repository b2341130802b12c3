/**
 * The one way the library's gRPC servers start listening (the runtime.v1 service, the
 * Gestalt provider and log-host endpoints). On a unix socket it:
 *
 * - refuses a path that is not a socket, or a socket of another user, or one a live server
 *   still answers on; only a dead socket of this user (a server that crashed) is removed;
 * - creates the socket private (mode 0600) whatever the process's umask: it is bound in a
 *   fresh 0700 directory beside its final path, made 0600 there, then linked into place, so
 *   no other user can ever connect, not even between bind and chmod;
 * - removes its own socket file on release, and nobody else's.
 * @module
 */
import { chmodSync, linkSync, lstatSync, mkdirSync, mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import type { Server, ServerCredentials } from "@grpc/grpc-js";
import { InvalidSpecError } from "../errors.js";
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

function refuse(path: string, message: string): InvalidSpecError {
  return new InvalidSpecError([{ path: "address", message: `${message} (${path})` }], {
    subject: "listen address",
  });
}

const myUid = (fallback: number): number =>
  typeof process.getuid === "function" ? process.getuid() : fallback;

/**
 * Creates the directory of a unix socket. A `private` one is made private to this user, and
 * refused if others could write to it: a socket in a directory that other users control
 * could be swapped for theirs.
 */
export function ensureSocketDir(dir: string, options: { private: boolean }): void {
  mkdirSync(dir, { recursive: true, ...(options.private ? { mode: 0o700 } : {}) });
  const stat = lstatSync(dir);
  if (!stat.isDirectory()) throw refuse(dir, "socket directory is not a directory");
  if (!options.private) return;
  if (stat.uid !== myUid(stat.uid))
    throw refuse(dir, `socket directory belongs to uid ${stat.uid}, not to this user`);
  if ((stat.mode & 0o077) !== 0)
    throw refuse(dir, "socket directory is accessible to other users (want mode 0700)");
}

/** Whether something accepts connections on the unix socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Removes a socket left by a server of this user that died; refuses anything else at `path`. */
async function claimSocketPath(path: string): Promise<void> {
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw refuse(path, "exists and is not a socket");
  if (stat.uid !== myUid(stat.uid)) throw refuse(path, `socket belongs to uid ${stat.uid}, not to this user`);
  if (await answers(path)) throw refuse(path, "another server is already listening on this socket");
  unlinkSync(path);
}

function bind(server: Server, target: string, credentials: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(target, credentials, (error, port) => (error ? reject(error) : resolve(port)));
  });
}

/** Binds a unix socket at `path` privately (see the module's comment); resolves with the socket's inode. */
async function bindPrivateSocket(
  server: Server,
  path: string,
  credentials: ServerCredentials,
): Promise<number> {
  const staging = mkdtempSync(join(dirname(path), ".rk-"));
  try {
    const staged = join(staging, "s");
    if (Buffer.byteLength(staged) > 107) {
      throw refuse(path, "the socket's directory is too long to bind privately in (at most 94 bytes)");
    }
    await bind(server, `unix:${staged}`, credentials);
    chmodSync(staged, 0o600);
    // link, not rename: it fails rather than replace a socket someone created meanwhile.
    try {
      linkSync(staged, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST")
        throw refuse(path, "another server took this socket path while this one started");
      throw error;
    }
    return lstatSync(path).ino;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
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
  const path = address.path;
  ensureSocketDir(dirname(path), { private: options.privateDir ?? false });
  await claimSocketPath(path);
  const inode = await bindPrivateSocket(server, path, credentials);
  return {
    port: 0,
    release() {
      try {
        if (lstatSync(path).ino === inode) unlinkSync(path);
      } catch {
        // Already gone.
      }
    },
  };
}
