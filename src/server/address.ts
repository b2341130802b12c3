/**
 * Where a runtime-kernel server listens and where its clients look for it. By default
 * both sides agree without configuration on a unix socket private to the user
 * (`$XDG_RUNTIME_DIR/runtime-kernel/runtime.sock`, else `/tmp/runtime-kernel-$UID/runtime.sock`),
 * so a kernel is never reachable from the network unless someone asks for it.
 * `RUNTIME_KERNEL_ADDRESS` overrides the default for both sides.
 * @module
 */
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { grpcTarget, parseListenAddress } from "../grpc/address.js";

/** The environment variable that names the address for both `serve` and clients. */
export const ADDRESS_ENV = "RUNTIME_KERNEL_ADDRESS";

/** A parsed listen or dial address (never `tls://`: a service's TLS is an option, not an address). */
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

/**
 * Parses `unix:PATH`, `unix://ABSOLUTE_PATH`, a bare path (starting with `/` or `.`),
 * `HOST:PORT`, `tcp://HOST:PORT` or `[IPv6]:PORT`. Relative unix paths are resolved against
 * the working directory. A refusal is an {@link InvalidSpecError} naming `address`.
 */
export function parseAddress(input: string): ServiceAddress {
  return parseListenAddress(input);
}

export { grpcTarget };
