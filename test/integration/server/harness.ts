/**
 * A kernel on the fake backend behind a real runtime.v1 server on a unix socket, and a
 * client dialing it: what every service test starts from.
 */
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createRuntimeKernel,
  type Profile,
  type RuntimeKernel,
  type RuntimeKernelOptions,
} from "../../../src/index.js";
import {
  createRuntimeClient,
  type RuntimeClient,
  type RuntimeClientOptions,
  type RuntimeKernelServer,
  type ServeRuntimeKernelOptions,
  serveRuntimeKernel,
} from "../../../src/server/index.js";
import { FakeBackend } from "../../../src/testing/index.js";

/** Profiles of the service tests: `default` runs until stopped, `stubborn` ignores SIGTERM. */
export const PROFILES: Record<string, Profile> = {
  // Specs of the tests script the fake's behaviour through `runnable.fake`.
  default: { runnable: { command: ["agent"] }, graceMs: 5_000, allowSpecRunnableKeys: ["fake"] },
  stubborn: { runnable: { command: ["agent"], fake: { ignoreTerminate: true } }, graceMs: 60_000 },
  other: { runnable: { command: ["other"] } },
  // Mount sources must lie in the machine's temporary directory.
  mounted: { runnable: { command: ["agent"] }, mountRoots: [realpathSync(tmpdir())] },
};

export interface Harness {
  fake: FakeBackend;
  kernel: RuntimeKernel;
  server: RuntimeKernelServer;
  client: RuntimeClient;
  dir: string;
  /** Another client of the same server, with its own options. */
  connect(options?: RuntimeClientOptions): RuntimeClient;
  close(): Promise<void>;
}

/** A temp dir short enough for unix socket paths. */
export function socketDir(): string {
  return mkdtempSync(join(tmpdir(), "rk-srv-"));
}

export async function startHarness(
  options: {
    kernel?: Partial<RuntimeKernelOptions>;
    server?: ServeRuntimeKernelOptions;
    client?: RuntimeClientOptions;
    fake?: FakeBackend;
  } = {},
): Promise<Harness> {
  const dir = socketDir();
  const fake = options.fake ?? new FakeBackend();
  const kernel = createRuntimeKernel({ backend: fake, profiles: PROFILES, ...options.kernel });
  const server = await serveRuntimeKernel(kernel, {
    address: `unix:${join(dir, "rk.sock")}`,
    ...options.server,
  });
  const clients: RuntimeClient[] = [];
  const connect = (clientOptions: RuntimeClientOptions = options.client ?? {}) => {
    const c = createRuntimeClient(server.address, clientOptions);
    clients.push(c);
    return c;
  };
  const client = connect();
  return {
    fake,
    kernel,
    server,
    client,
    dir,
    connect,
    async close() {
      for (const c of clients) c.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Collects what an async iterable yields until `until` returns true for an item. */
export async function collectUntil<T>(
  iterable: AsyncIterable<T>,
  until: (item: T, all: T[]) => boolean,
): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) {
    out.push(item);
    if (until(item, out)) break;
  }
  return out;
}

/** A promise and the functions that settle it. */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
