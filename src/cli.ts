#!/usr/bin/env node
/**
 * The `runtime-kernel` command's entry point (package.json `bin`). All the logic is in
 * `cli/main.ts`, which tests call in process; this file only binds it to the real process.
 * @module
 */
import { main } from "./cli/main.js";

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Everything is closed by now; a stray handle must not keep a finished command alive.
    setTimeout(() => process.exit(code), 1_000).unref();
  },
  (error: unknown) => {
    process.stderr.write(
      `runtime-kernel: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
