/**
 * The one parser of gRPC addresses, for every listener and dialler of the library (the
 * runtime.v1 service and its client, the Gestalt provider and log-host listeners, hosted
 * plugins' dial targets). The grammars differ only in what a scheme-less text means: a
 * service address reads it as `HOST:PORT`, a Gestalt dial target (as upstream gestaltd
 * writes them) as a unix socket path.
 * @module
 */
import { resolve } from "node:path";
import { InvalidSpecError } from "../errors.js";

/** A parsed address: a unix socket, or a TCP host and port (`tls` when written `tls://`). */
export type GrpcAddress =
  | { kind: "unix"; path: string }
  | { kind: "tcp"; host: string; port: number; tls?: true };

/** How {@link parseGrpcAddress} reads its input. */
export interface ParseGrpcAddressOptions {
  /** What text without a scheme is: `HOST:PORT` (`"tcp"`) or a socket path (`"unix"`). */
  bare: "tcp" | "unix";
  /**
   * For a listener: port 0 (any free port) is allowed, and a relative socket path is resolved
   * against the working directory. A dialler keeps relative paths and needs a real port.
   */
  listen: boolean;
  /** Whether `tls://HOST:PORT` is accepted (where TLS is chosen by the address, not by options). */
  allowTls: boolean;
}

/** Why an address was refused; callers wrap it in their own error, naming their field. */
export class AddressSyntaxError extends Error {}

/** sun_path holds 108 bytes with its NUL; a longer path fails later with an obscure EINVAL. */
const MAX_SOCKET_PATH_BYTES = 107;

function socket(path: string, options: ParseGrpcAddressOptions): GrpcAddress {
  if (path === "") throw new AddressSyntaxError("needs a socket path after unix:");
  const full = options.listen ? resolve(path) : path;
  if (Buffer.byteLength(full) > MAX_SOCKET_PATH_BYTES)
    throw new AddressSyntaxError(`unix socket path is longer than ${MAX_SOCKET_PATH_BYTES} bytes`);
  return { kind: "unix", path: full };
}

function hostPort(text: string, tls: boolean, options: ParseGrpcAddressOptions, form: string): GrpcAddress {
  const match = /^(?:\[([^\]]+)\]|([^:[\]/]+)):(\d{1,5})\/?$/.exec(text);
  if (!match) throw new AddressSyntaxError(`must be ${form}`);
  const port = Number(match[3]);
  if (port > 65535) throw new AddressSyntaxError("port must be at most 65535");
  if (port === 0 && !options.listen) throw new AddressSyntaxError("port must be between 1 and 65535");
  const host = (match[1] ?? match[2])!;
  return tls ? { kind: "tcp", host, port, tls } : { kind: "tcp", host, port };
}

/**
 * Parses `unix:PATH`, `unix://ABSOLUTE_PATH`, a path starting with `/` or `.`, `tcp://HOST:PORT`,
 * `tls://HOST:PORT` (when allowed), and scheme-less text as `options.bare` says.
 * Throws {@link AddressSyntaxError} saying what is wrong.
 */
export function parseGrpcAddress(input: string, options: ParseGrpcAddressOptions): GrpcAddress {
  const text = input.trim();
  if (text === "") throw new AddressSyntaxError("must not be empty");
  if (text.startsWith("/") || text.startsWith(".")) return socket(text, options);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):(\/\/)?(.*)$/s.exec(text);
  const name = scheme?.[1]?.toLowerCase();
  if (scheme && name === "unix") {
    const rest = scheme[3]!;
    if (scheme[2] !== undefined && rest !== "" && !rest.startsWith("/"))
      throw new AddressSyntaxError("unix:// needs an absolute path");
    return socket(rest, options);
  }
  if (scheme && scheme[2] !== undefined) {
    if (name === "tcp") return hostPort(scheme[3]!, false, options, "tcp://HOST:PORT");
    if (name === "tls" && options.allowTls) return hostPort(scheme[3]!, true, options, "tls://HOST:PORT");
    throw new AddressSyntaxError(`unsupported scheme ${JSON.stringify(name)}`);
  }
  if (options.bare === "unix") return socket(text, options);
  return hostPort(text, false, options, "unix:PATH or HOST:PORT");
}

/**
 * A listener's address (the runtime.v1 service, a Gestalt provider or log host): scheme-less
 * text is `HOST:PORT`, port 0 picks a free port, relative socket paths are resolved, TLS is an
 * option of the server rather than a scheme. A refusal is an {@link InvalidSpecError} naming `address`.
 */
export function parseListenAddress(input: string): GrpcAddress {
  try {
    return parseGrpcAddress(input, { bare: "tcp", listen: true, allowTls: false });
  } catch (error) {
    if (!(error instanceof AddressSyntaxError)) throw error;
    throw new InvalidSpecError(
      [{ path: "address", message: `${error.message} (got ${JSON.stringify(input)})` }],
      {
        subject: "address",
      },
    );
  }
}

/** The address in the form grpc-js takes (`unix:/abs/path`, `host:port`, `[::1]:port`). */
export function grpcTarget(address: GrpcAddress): string {
  if (address.kind === "unix") return `unix:${address.path}`;
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
