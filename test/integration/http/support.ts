/**
 * A real `runtime-kernel serve --http` subprocess (from source) on the process backend, and
 * a client for it: what the HTTP tests start from.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { ProcessBackend } from "../../../src/backends/process/index.js";

const ROOT = resolve(import.meta.dirname, "../../..");
const CLI = ["--import", import.meta.resolve("tsx"), join(ROOT, "src/cli.ts")];

/** Profiles of the HTTP tests (shell one-liners on the process backend). */
export const PROFILES = {
  // Runs until told to stop, and stops at once on SIGTERM.
  sleeper: {
    runnable: { command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"] },
    graceMs: 5_000,
  },
  exit3: { runnable: { command: ["sh", "-c", "exit 3"] } },
  broken: { runnable: { command: ["/nonexistent/program"] } },
};

export const TOKEN = "http-test-token";
export const SECRET = "http-test-signing-secret";

export interface Serve {
  child: ChildProcess;
  url: string;
  stderr(): string;
  stdout(): string;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  /** SIGTERM, and wait for the exit. */
  stop(): Promise<number | null>;
}

/** A scratch home for serve: config, token, secret and state all inside it. */
export interface Home {
  dir: string;
  env: NodeJS.ProcessEnv;
  config: string;
  cleanup(): Promise<void>;
}

export function makeHome(config: Record<string, unknown> = {}): Home {
  const dir = mkdtempSync(join(tmpdir(), "rk-http-"));
  writeFileSync(join(dir, "token"), `${TOKEN}\n`, { mode: 0o600 });
  writeFileSync(join(dir, "secret"), `${SECRET}\n`, { mode: 0o600 });
  const path = join(dir, "config.json");
  writeFileSync(
    path,
    JSON.stringify({
      kernelId: "http-test",
      profiles: PROFILES,
      tokenFile: "token",
      reapAfterMs: 600_000,
      ...config,
      http: {
        address: "127.0.0.1:0",
        callbacks: { signingSecretFile: "secret", initialBackoffMs: 100, maxBackoffMs: 500 },
        ...(config.http as object),
      },
    }),
  );
  const env = {
    PATH: process.env.PATH,
    HOME: dir,
    XDG_RUNTIME_DIR: join(dir, "run"),
    XDG_STATE_HOME: join(dir, "state"),
  };
  return {
    dir,
    env,
    config: path,
    async cleanup() {
      const stateDir = join(dir, "state", "runtime-kernel", "http-test");
      if (existsSync(stateDir))
        await new ProcessBackend({ stateDir }).stopSupervisor({ force: true }).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts `serve --config ... --json` in `home` and resolves once the HTTP surface listens. */
export function startServe(home: Home, args: string[] = []): Promise<Serve> {
  const child = spawn(process.execPath, [...CLI, "serve", "--config", home.config, "--json", ...args], {
    cwd: home.dir,
    env: home.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    stdout += chunk;
  });
  const exited = new Promise<number | null>((done) => child.on("close", (code) => done(code)));
  return new Promise<Serve>((resolveServe, reject) => {
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk;
      const match = /over HTTP on (http:\/\/[\d.:]+)/.exec(stderr);
      if (match)
        resolveServe({
          child,
          url: match[1]!,
          stderr: () => stderr,
          stdout: () => stdout,
          kill: async () => {
            child.kill("SIGKILL");
            await exited;
          },
          stop: async () => {
            child.kill("SIGTERM");
            return exited;
          },
        });
    });
    child.on("close", (code) => reject(new Error(`serve exited with ${code} before listening:\n${stderr}`)));
  });
}

/** A parsed JSON answer (JSON.parse's own type: the tests look into it freely). */
export type Json = ReturnType<typeof JSON.parse>;

/** One request to the server: its status, headers and parsed JSON body. */
export async function call(
  url: string,
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string>; token?: string | null } = {},
): Promise<{ status: number; headers: Headers; body: Json }> {
  const token = options.token === undefined ? TOKEN : options.token;
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
      ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
      ...options.headers,
    },
    ...(options.body !== undefined
      ? {
          body:
            typeof options.body === "string" || options.body instanceof Uint8Array
              ? options.body
              : JSON.stringify(options.body),
        }
      : {}),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: response.status, headers: response.headers, body };
}

/**
 * Runs one `serve --http` (with `config` over the defaults) for the whole file: started
 * before its tests, stopped and cleaned up after. The returned object is filled in `beforeAll`.
 */
export function serveForFile(config: Record<string, unknown> = {}): { home: Home; serve: Serve } {
  const running = {} as { home: Home; serve: Serve };
  beforeAll(async () => {
    running.home = makeHome(config);
    running.serve = await startServe(running.home);
  }, 60_000);
  afterAll(async () => {
    if (running.serve && running.serve.child.exitCode === null) await running.serve.stop();
    await running.home?.cleanup();
  }, 60_000);
  return running;
}
