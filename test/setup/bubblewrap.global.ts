/**
 * Global setup of the tiers that run sandboxed processes (`process`, and `unit` for the
 * examples): bubblewrap from Debian's package, installed if missing, as the other substrates
 * are. If it cannot be installed, setup throws: the tier fails, it never skips.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);
const BWRAP = "/usr/bin/bwrap";

export default async function setup(): Promise<void> {
  if (existsSync(BWRAP)) return;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    await run("apt-get", ["update", "-qq"], { env, timeout: 300_000 });
    await run("apt-get", ["install", "-y", "-qq", "bubblewrap"], { env, timeout: 600_000 });
  } catch (error) {
    throw new Error(`Cannot install bubblewrap (apt-get install bubblewrap): ${(error as Error).message}`);
  }
  if (!existsSync(BWRAP)) throw new Error(`apt-get installed bubblewrap but ${BWRAP} is missing`);
}
