/**
 * Where a runtime-kernel server listens and where its clients look for it. By default
 * both sides agree without configuration on a unix socket private to the user
 * (`$XDG_RUNTIME_DIR/runtime-kernel/runtime.sock`, else `/tmp/runtime-kernel-$UID/runtime.sock`),
 * so a kernel is never reachable from the network unless someone asks for it.
 * `RUNTIME_KERNEL_ADDRESS` overrides the default for both sides.
 * @module
 */
import { lstatSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { InvalidSpecError } from "../errors.js";

/** The environment variable that names the address for both `serve` and clients. */
export const ADDRESS_ENV = "RUNTIME_KERNEL_ADDRESS";

/** A parsed listen or dial address. */
export type ServiceAddress = { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

/** The socket path used when nothing says otherwise. */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const runtimeDir = env.XDG_RUNTIME_DIR;
  if (runtimeDir && isAbsolute(runtimeDir)) return join(runtimeDir, "runtime-kernel", "runtime.sock");
  const uid = typeof process.getuid === "function" ? process.getuid() : "user";
  return join(tmpdir(), `runtime-kernel-${uid}`, "runtime.sock");
}

/** The address a server listens on and a client dials when none is given: `$RUNTIME_KERNEL_ADDRESS`, else the private socket. */
export function defaultAddress(env: NodeJS.ProcessEnv = process.env): string {
  return env[ADDRESS_ENV] || `unix:${defaultSocketPath(env)}`;
}

function refuse(input: string, message: string): InvalidSpecError {
  return new InvalidSpecError([{ path: "address", message: `${message} (got "${input}")` }], {
    subject: "address",
  });
}

/**
 * Parses `unix:PATH`, `unix://ABSOLUTE_PATH`, a bare path (starting with `/` or `.`),
 * `HOST:PORT` or `[IPv6]:PORT`. Relative unix paths are resolved against the working directory.
 */
export function parseAddress(input: string): ServiceAddress {
  const text = input.trim();
  if (text === "") throw refuse(input, "must not be empty");
  if (text.startsWith("unix:") || text.startsWith("/") || text.startsWith(".")) {
    let path = text.startsWith("unix://") ? text.slice("unix://".length) : text.replace(/^unix:/, "");
    if (text.startsWith("unix://") && !path.startsWith("/"))
      throw refuse(input, "unix:// needs an absolute path");
    if (path === "") throw refuse(input, "needs a socket path after unix:");
    path = resolve(path);
    // sun_path holds 108 bytes with its NUL; a longer path fails later with an obscure EINVAL.
    if (Buffer.byteLength(path) > 107) throw refuse(input, "unix socket path is longer than 107 bytes");
    return { kind: "unix", path };
  }
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!match) throw refuse(input, "must be unix:PATH or HOST:PORT");
  const host = (match[1] ?? match[2])!;
  const port = Number(match[3]);
  if (port > 65535) throw refuse(input, "port must be at most 65535");
  return { kind: "tcp", host, port };
}

/** The address in the form grpc-js takes (`unix:/abs/path`, `host:port`, `[::1]:port`). */
export function grpcTarget(address: ServiceAddress): string {
  if (address.kind === "unix") return `unix:${address.path}`;
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** Whether a TCP host can only be reached from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * Creates the directory of a unix socket. The default one (`private`) is made private to
 * this user, and refused if others could write to it: a socket in a directory that other
 * users control could be swapped for theirs.
 */
export function ensureSocketDir(dir: string, options: { private: boolean }): void {
  mkdirSync(dir, { recursive: true, ...(options.private ? { mode: 0o700 } : {}) });
  const stat = lstatSync(dir);
  if (!stat.isDirectory()) throw refuse(dir, "socket directory is not a directory");
  if (!options.private) return;
  const uid = typeof process.getuid === "function" ? process.getuid() : stat.uid;
  if (stat.uid !== uid) throw refuse(dir, `socket directory belongs to uid ${stat.uid}, not to this user`);
  if ((stat.mode & 0o077) !== 0)
    throw refuse(dir, "socket directory is accessible to other users (want mode 0700)");
}
