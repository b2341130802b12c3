/**
 * A private redis-server from Debian's package, for the `redis` test tier and the schedule
 * benchmark: installed if missing (apt-get, with a policy-rc.d so the package's own service is
 * not started), listening on 127.0.0.1 at a free port with a password, its files in a folder
 * of its own, no persistence, and stopped by its pid. Failing to start throws: never a skip.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { alive } from "./processes.js";

const run = promisify(execFile);
const SERVER = "/usr/bin/redis-server";
const POLICY = "/usr/sbin/policy-rc.d";
/** Folders are named for the process that started the server, so that a later run can reap what a killed one left. */
const DIR_PREFIX = "rk-redis-";

/** A running test Redis. */
export interface TestRedis {
  /** `redis://:<password>@127.0.0.1:<port>` */
  url: string;
  pid: number;
  dir: string;
  stop(): Promise<void>;
}

async function ensureInstalled(): Promise<void> {
  if (existsSync(SERVER)) return;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const ownPolicy = !existsSync(POLICY);
  // Keep the package's maintainer scripts from starting a system-wide redis-server.
  if (ownPolicy) writeFileSync(POLICY, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
  try {
    await run("apt-get", ["update", "-qq"], { env, timeout: 300_000 });
    await run("apt-get", ["install", "-y", "-qq", "redis-server"], { env, timeout: 600_000 });
  } catch (error) {
    throw new Error(
      `Cannot install redis-server (apt-get install redis-server): ${(error as Error).message}`,
    );
  } finally {
    if (ownPolicy) unlinkSync(POLICY);
  }
  if (!existsSync(SERVER)) throw new Error(`apt-get installed redis-server but ${SERVER} is missing`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once the server answers PING with PONG on `port`. */
function answersPing(port: number, password: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let reply = "";
    socket.setTimeout(1_000, () => socket.destroy());
    socket.once("error", () => resolve(false));
    socket.once("close", () => resolve(reply.includes("+PONG")));
    socket.on("data", (data) => {
      reply += data.toString("latin1");
      if (reply.includes("+PONG") || reply.includes("-")) socket.end();
    });
    socket.connect(port, "127.0.0.1", () => socket.write(`AUTH ${password}\r\nPING\r\n`));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
}

/** Stops the servers of earlier runs whose starting process is gone (killed before its teardown). */
function reapAbandoned(): void {
  for (const name of readdirSync(tmpdir())) {
    const owner = Number(name.slice(DIR_PREFIX.length).split("-")[0]);
    if (!name.startsWith(DIR_PREFIX) || !Number.isInteger(owner) || alive(owner)) continue;
    const dir = join(tmpdir(), name);
    try {
      const pid = Number(readFileSync(join(dir, "redis.pid"), "utf8").trim());
      // Only a redis-server whose arguments name this folder is ours to stop.
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir)) process.kill(pid, "SIGKILL");
    } catch {}
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts a private redis-server; throws with its log when it does not come up. */
export async function startRedis(): Promise<TestRedis> {
  await ensureInstalled();
  reapAbandoned();
  const dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  const password = randomBytes(12).toString("hex");
  const port = await freePort();
  const log = join(dir, "redis.log");
  const child = spawn(
    SERVER,
    [
      "--bind",
      "127.0.0.1",
      "--port",
      String(port),
      "--dir",
      dir,
      "--requirepass",
      password,
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
      "--logfile",
      log,
      "--pidfile",
      join(dir, "redis.pid"),
      "--protected-mode",
      "yes",
    ],
    { stdio: "ignore" },
  );
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited(child);
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    if (await answersPing(port, password)) {
      return { url: `redis://:${password}@127.0.0.1:${port}`, pid: child.pid as number, dir, stop };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const text = existsSync(log) ? readFileSync(log, "utf8").slice(-4000) : "(no log)";
  await stop();
  throw new Error(`redis-server did not start on 127.0.0.1:${port} (exit ${child.exitCode}):\n${text}`);
}
