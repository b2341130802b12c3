/**
 * A real `runtime-kernel serve` subprocess on the fake backend, listening on a unix socket
 * in a scratch directory: what the tests that try to take the server down start from.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../../..");
/** `node --import tsx src/cli.ts`, by absolute paths: the commands run in a scratch directory. */
export const CLI = [process.execPath, "--import", import.meta.resolve("tsx"), join(ROOT, "src/cli.ts")];

export interface ServeProcess {
  child: ChildProcess;
  dir: string;
  /** The socket path `serve` listens on. */
  socket: string;
  /** Everything `serve` printed so far. */
  output(): string;
  /** Whether the process is still running. */
  alive(): boolean;
  /** Runs another `runtime-kernel` command against this server; resolves with its exit and output. */
  run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** SIGTERM, wait for the exit, remove the scratch directory. */
  stop(): Promise<void>;
}

/** Starts `serve --backend fake` on `<dir>/<socketName>`, under `umask` when given; resolves once it listens. */
export async function startServeProcess(
  options: { umask?: string; socketName?: string } = {},
): Promise<ServeProcess> {
  const dir = mkdtempSync(join(tmpdir(), "rk-serve-"));
  const socket = join(dir, options.socketName ?? "rk.sock");
  const env = { PATH: process.env.PATH, HOME: dir, NO_COLOR: "1" };
  const argv = [...CLI, "serve", "--backend", "fake", "--address", `unix:${socket}`];
  const quoted = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const child = spawn("sh", ["-c", `${options.umask ? `umask ${options.umask} && ` : ""}exec ${quoted}`], {
    cwd: dir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (c: Buffer) => (output += c));
  child.stderr!.on("data", (c: Buffer) => (output += c));
  await new Promise<void>((ready, fail) => {
    child.stderr!.on("data", () => output.includes("serving runtime.v1 on") && ready());
    child.on("close", (code) => fail(new Error(`serve exited with ${code}:\n${output}`)));
  });
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    dir,
    socket,
    output: () => output,
    alive,
    run(args) {
      const command = spawn(CLI[0]!, [...CLI.slice(1), ...args, "--address", `unix:${socket}`], {
        cwd: dir,
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      command.stdout!.on("data", (c: Buffer) => (stdout += c));
      command.stderr!.on("data", (c: Buffer) => (stderr += c));
      return new Promise((done) => command.on("close", (code) => done({ code, stdout, stderr })));
    },
    async stop() {
      if (alive()) {
        const closed = new Promise((r) => child.once("close", r));
        child.kill("SIGTERM");
        await closed;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
