/**
 * Reading the CLI's secret files (bearer tokens, TLS keys, callback signing secrets): each is
 * checked to be private before its bytes are used, and every failure names the option.
 * @module
 */
import { readFileSync } from "node:fs";
import { secretFileProblem } from "../private-path.js";
import { UsageError } from "./command.js";

/** The contents of the secret file at `path`, named `what` in errors (`--token-file`, `tls.keyFile`). */
export function readSecretFile(path: string, what: string, command?: string): Buffer {
  const problem = secretFileProblem(path);
  if (problem) throw new UsageError(`${what} ${path} ${problem.problem}`, command);
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError(`cannot read ${what} ${path}: ${(error as Error).message}`, command);
  }
}
