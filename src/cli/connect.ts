/**
 * How client commands find and dial the server: the same default address `serve` listens
 * on, a token from `$RUNTIME_KERNEL_TOKEN` or a file (never a flag: argv is visible to
 * every user through `ps`), and a plain message when nobody answers.
 * @module
 */
import { readFileSync } from "node:fs";
import { isRuntimeKernelError } from "../errors.js";
import { defaultAddress } from "../server/address.js";
import { createRuntimeClient, type RuntimeClient } from "../server/client.js";
import { GrpcStatus, RuntimeServiceError } from "../server/errors.js";
import { type CommandContext, stringOption, UsageError } from "./command.js";
import { readSecretFile } from "./secret-file.js";
import type { Style } from "./style.js";

/** The environment variable holding the bearer token, for `serve` and clients alike. */
export const TOKEN_ENV = "RUNTIME_KERNEL_TOKEN";

/** The bearer token from `--token-file`, else `$RUNTIME_KERNEL_TOKEN`, else none. */
export function tokenFrom(context: CommandContext): string | undefined {
  const file = stringOption(context, "token-file");
  if (file) return readSecretFile(file, "--token-file").toString("utf8").trim();
  return context.io.env[TOKEN_ENV] || undefined;
}

/** The address the command talks to. */
export function addressFrom(context: CommandContext): string {
  return stringOption(context, "address") ?? defaultAddress(context.io.env);
}

/** A client for the command's server. */
export function connect(context: CommandContext): RuntimeClient {
  const ca = stringOption(context, "tls-ca");
  const token = tokenFrom(context);
  let tls: { ca: Buffer } | undefined;
  if (ca) {
    try {
      tls = { ca: readFileSync(ca) };
    } catch (error) {
      throw new UsageError(`cannot read --tls-ca ${ca}: ${(error as Error).message}`);
    }
  }
  return createRuntimeClient(addressFrom(context), {
    ...(token ? { token } : {}),
    ...(tls ? { tls } : {}),
  });
}

/** Whether an error means no server answered at all (as opposed to a server refusing the call). */
export function isUnreachable(error: unknown): boolean {
  return error instanceof RuntimeServiceError && !error.fromKernel && error.status === GrpcStatus.UNAVAILABLE;
}

/**
 * The one way every command reports a failure on stderr: `error: <message>`, the message
 * ending in `[CODE]` when it has one. With a `subject` (the workload a multi-id command was
 * acting on) the message names it, unless it already does.
 */
export function failureLine(style: Style, message: string, subject?: string): string {
  const named = subject === undefined || message.includes(`"${subject}"`) ? "" : `${subject}: `;
  return `${style.red("error:")} ${named}${message}`;
}

/** A message for a failed call, written for the person at the terminal. */
export function describeFailure(error: unknown, address: string): string {
  if (isUnreachable(error)) {
    return `cannot reach a runtime-kernel server at ${address}\n  start one with \`runtime-kernel serve\`, or pass --address`;
  }
  if (error instanceof RuntimeServiceError && error.status === GrpcStatus.UNAUTHENTICATED) {
    return `the server at ${address} refused the token: set ${TOKEN_ENV} or pass --token-file`;
  }
  if (isRuntimeKernelError(error)) return `${error.message} [${error.code}]`;
  return error instanceof Error ? error.message : String(error);
}
