/**
 * Global setup of the `package` test project: the package as a user gets it.
 *
 * 1. Builds the package in a scratch folder from a copy of its files (never into the repo's
 *    `dist/`, which the CLI tests of other tiers may be running at the same moment) and packs
 *    the tarball there.
 * 2. Installs the tarball into two empty projects, offline from the local npm cache, with the
 *    versions of the repo's own lock (so a fresh clone after `npm ci` has every tarball):
 *    - `bare`: `npm install runtime-kernel` and nothing else (no optional peer, no test runner);
 *    - `full`: with the optional peers (dockerode, @kubernetes/client-node), vitest and
 *      @types/node, as a TypeScript host or backend author has it.
 * Tests read the paths with `inject("pkg")`. Teardown removes the scratch folder. If a step
 * fails (no cached tarball: run `npm ci` first), setup throws: the tier fails, it never skips.
 */
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import type { TestProject } from "vitest/node";

/** Where the tier's projects are, and what the tarball holds. */
export interface PackageTier {
  /** The packed `runtime-kernel-<version>.tgz`. */
  tarball: string;
  /** The project with runtime-kernel alone. */
  bare: string;
  /** The project with the optional peers, vitest and @types/node. */
  full: string;
  /** The package's subpath exports (`.`, `./testing`, ...), without `./package.json`. */
  entries: string[];
  version: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    pkg: PackageTier;
  }
}

const ROOT = resolve(import.meta.dirname, "../..");
const run = promisify(execFile);

interface Lock {
  name: string;
  packages: Record<string, Record<string, unknown>>;
}

async function sh(cwd: string, file: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(file, args, { cwd, maxBuffer: 64 * 1024 * 1024, timeout: 600_000 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${file} ${args.join(" ")} (in ${cwd}) failed: ${e.stderr || e.stdout || e.message}`);
  }
}

/**
 * An empty project depending on the tarball and `extra` (names from the repo's lock), installed
 * offline. The repo's lock, re-rooted, pins every version; npm prunes what nothing needs.
 */
async function consumer(dir: string, tarball: string, extra: string[]): Promise<void> {
  mkdirSync(dir);
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as Lock;
  const dependencies: Record<string, string> = { "runtime-kernel": `file:${tarball}` };
  for (const name of extra) {
    const locked = lock.packages[`node_modules/${name}`];
    if (!locked) throw new Error(`${name} is not in package-lock.json`);
    dependencies[name] = String(locked.version);
  }
  const manifest = { name: "consumer", version: "1.0.0", private: true, type: "commonjs", dependencies };
  lock.name = "consumer";
  lock.packages[""] = { name: "consumer", version: "1.0.0", dependencies };
  writeFileSync(join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(join(dir, "package-lock.json"), `${JSON.stringify(lock, null, 2)}\n`);
  await sh(dir, "npm", ["install", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"]);
}

export default async function setup(project: TestProject): Promise<() => void> {
  const scratch = mkdtempSync(join(tmpdir(), "rk-package-"));
  const stage = join(scratch, "stage");
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    version: string;
    files: string[];
    exports: Record<string, unknown>;
  };
  try {
    mkdirSync(stage);
    cpSync(join(ROOT, "package.json"), join(stage, "package.json"));
    for (const file of pkg.files.filter((f) => f !== "dist")) {
      cpSync(join(ROOT, file), join(stage, file), { recursive: true });
    }
    // The build the package ships (tsup.config.ts), made in the stage from its copy of src/, so
    // that the source maps name the sources the package ships (../src/...), as a build in the
    // repo does. The repo's node_modules serve the build; npm pack leaves them out.
    for (const file of ["tsup.config.ts", "tsconfig.json"]) cpSync(join(ROOT, file), join(stage, file));
    symlinkSync(join(ROOT, "node_modules"), join(stage, "node_modules"));
    await sh(stage, join(ROOT, "node_modules/.bin/tsup"), ["--silent"]);
    const packed = JSON.parse(
      await sh(stage, "npm", ["pack", "--json", "--pack-destination", scratch]),
    ) as Array<{
      filename: string;
    }>;
    const tarball = join(scratch, packed[0]!.filename);
    const bare = join(scratch, "bare");
    const full = join(scratch, "full");
    await consumer(bare, tarball, []);
    await consumer(full, tarball, ["dockerode", "@kubernetes/client-node", "vitest", "@types/node"]);
    project.provide("pkg", {
      tarball,
      bare,
      full,
      entries: Object.keys(pkg.exports).filter((e) => e !== "./package.json"),
      version: pkg.version,
    });
  } catch (error) {
    rmSync(scratch, { recursive: true, force: true });
    throw error;
  }
  return () => rmSync(scratch, { recursive: true, force: true });
}
