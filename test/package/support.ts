/**
 * What the package tier's tests share: running a program in one of the installed projects
 * (see test/setup/package.global.ts), and the import specifier of each entry.
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** How a program ended, and what it printed. */
export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `file args` in `cwd`; resolves however it exits. */
export function exec(
  cwd: string,
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Finished> {
  return new Promise((done) => {
    execFile(
      file,
      args,
      { cwd, env, maxBuffer: 16 * 1024 * 1024, timeout: 120_000 },
      (error, stdout, stderr) => {
        const code = error ? ((error as { code?: unknown }).code as number | null) : 0;
        done({ code: typeof code === "number" ? code : null, stdout, stderr });
      },
    );
  });
}

/** Runs a program given as text with the project's Node, as ESM (`.mjs`) or CommonJS (`.cjs`). */
export function script(
  cwd: string,
  kind: "esm" | "cjs",
  source: string,
  args: string[] = [],
): Promise<Finished> {
  const type = kind === "esm" ? "module" : "commonjs";
  return exec(cwd, process.execPath, [`--input-type=${type}`, "-e", source, "--", ...args]);
}

/** `runtime-kernel`, `runtime-kernel/testing`, ... for an `exports` key. */
export function specifier(entry: string): string {
  return entry === "." ? "runtime-kernel" : `runtime-kernel/${entry.slice(2)}`;
}

const TSC = resolve(import.meta.dirname, "../../node_modules/typescript/bin/tsc");

/**
 * A consumer's strict TypeScript check of `files` in `dir` (which must sit in an installed
 * project), with the type checking of libraries left on: the declarations the tarball ships,
 * and those of the packages they name, must hold up under `strict` without `skipLibCheck`.
 */
export function typeCheck(dir: string, files: string[]): Promise<Finished> {
  const compilerOptions = {
    strict: true,
    skipLibCheck: false,
    module: "nodenext",
    moduleResolution: "nodenext",
    target: "es2022",
    types: ["node"],
    noEmit: true,
  };
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions, files }));
  return exec(dir, process.execPath, [TSC, "-p", "tsconfig.json"]);
}
