/**
 * The listening rules of every server of the library, whatever its protocol (the runtime.v1
 * gRPC service, the Gestalt provider endpoints, the runtime.v1 HTTP surface):
 *
 * - a plaintext TCP listener other machines can reach is refused unless asked for;
 * - a unix socket is taken over only from a server of this user that died (a path that is
 *   not a socket, another user's socket, or one that still answers is refused);
 * - a unix socket is created private (mode 0600) whatever the process's umask: it is bound in
 *   a fresh 0700 directory beside its final path, made 0600 there, then linked into place, so
 *   no other user can ever connect, not even between bind and chmod; and it is removed on
 *   release only if it is still the one created;
 * - a bearer token is compared in constant time.
 *
 * Each server brings its own `bind` (grpc-js, node:http); the rules are here once.
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import { chmodSync, linkSync, lstatSync, mkdirSync, mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import { InvalidSpecError } from "../errors.js";
import { ensurePrivateDir } from "../private-path.js";

function refuse(path: string, message: string): InvalidSpecError {
  return new InvalidSpecError([{ path: "address", message: `${message} (${path})` }], {
    subject: "listen address",
  });
}

const myUid = (fallback: number): number =>
  typeof process.getuid === "function" ? process.getuid() : fallback;

/** Whether a TCP host can only be reached from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * Refuses a plaintext TCP listener on an address other machines can reach, unless
 * `allowInsecureRemote`: a kernel runs arbitrary commands, so a network listener needs TLS
 * (and a token).
 */
export function checkListenSecurity(
  address: { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number },
  options: { secure: boolean; allowInsecureRemote?: boolean },
): void {
  if (address.kind !== "tcp" || isLoopbackHost(address.host)) return;
  if (options.secure || options.allowInsecureRemote) return;
  throw new InvalidSpecError(
    [
      {
        path: "address",
        message: `${address.host} is reachable from other machines: serve it with tls (and a token), or set allowInsecureRemote`,
      },
    ],
    { subject: "server options" },
  );
}

/**
 * A checker of `Authorization` values against `Bearer <token>` (always true without a
 * token), comparing in constant time so the token cannot be guessed byte by byte from
 * response times.
 */
export function bearerChecker(token: string | undefined): (authorization: string | undefined) => boolean {
  if (token === undefined) return () => true;
  const expected = Buffer.from(`Bearer ${token}`);
  return (authorization) => {
    const actual = Buffer.from(authorization ?? "");
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  };
}

/**
 * Creates the directory of a unix socket. A `private` one must be private to this user by the
 * rules of `private-path.ts` (this user's, writable by nobody else, no directory above that
 * another user could rename it in), and is refused otherwise: a socket in a directory that
 * other users control could be swapped for theirs.
 */
export function ensureSocketDir(dir: string, options: { private: boolean }): void {
  if (options.private) {
    const problem = ensurePrivateDir(dir);
    if (problem) throw refuse(problem.path, `socket directory ${problem.problem}`);
    return;
  }
  mkdirSync(dir, { recursive: true });
  if (!lstatSync(dir).isDirectory()) throw refuse(dir, "socket directory is not a directory");
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

/** A bound private unix socket. */
export interface SocketListener {
  /** Removes the socket file, if it is still the one this listener created. Call once the server is shut down. */
  release(): void;
}

/**
 * Binds a unix socket at `path` privately (see the module's comment): `bind` is the
 * server's own call, given the path to bind. On failure nothing is left on disk.
 */
export async function listenUnixSocket(
  path: string,
  bind: (path: string) => Promise<unknown>,
  options: { privateDir?: boolean } = {},
): Promise<SocketListener> {
  ensureSocketDir(dirname(path), { private: options.privateDir ?? false });
  await claimSocketPath(path);
  const staging = mkdtempSync(join(dirname(path), ".rk-"));
  let inode: number;
  try {
    const staged = join(staging, "s");
    if (Buffer.byteLength(staged) > 107) {
      throw refuse(path, "the socket's directory is too long to bind privately in (at most 94 bytes)");
    }
    await bind(staged);
    chmodSync(staged, 0o600);
    // link, not rename: it fails rather than replace a socket someone created meanwhile.
    try {
      linkSync(staged, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST")
        throw refuse(path, "another server took this socket path while this one started");
      throw error;
    }
    inode = lstatSync(path).ino;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return {
    release() {
      try {
        if (lstatSync(path).ino === inode) unlinkSync(path);
      } catch {
        // Already gone.
      }
    },
  };
}
