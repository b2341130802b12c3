import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  isRuntimeKernelError,
  RuntimeKernelError,
  type RuntimeKernelErrorCode,
} from "../../../src/errors.js";
import {
  createPluginHost,
  grpcRuntimeProvider,
  HostedPluginError,
  loadGestaltConfig,
  type RuntimeProvider,
  type ServedEndpoint,
  serveRuntimeProvider,
} from "../../../src/gestalt/index.js";
import { KERNEL_ERROR_CODES } from "../../fixtures/error-codes.js";

/**
 * A provider served over a real gRPC socket that fails each call with the kernel code named
 * by the session id it is asked about, and the host-side client reading those failures back.
 */

let dir: string;
let endpoint: ServedEndpoint;
let host: RuntimeProvider;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "rk-codes-"));
  const failing = {
    async getSession({ sessionId }: { sessionId: string }) {
      const [code, retryable] = sessionId.split("/") as [RuntimeKernelErrorCode, string];
      throw new RuntimeKernelError(code, `the provider said ${code} about wörk`, {
        retryable: retryable === "retryable",
        workloadId: "wörk",
      });
    },
  } as unknown as RuntimeProvider;
  endpoint = await serveRuntimeProvider(failing, `unix://${join(dir, "provider.sock")}`);
  host = grpcRuntimeProvider(endpoint.address, { callTimeoutMs: 10_000 });
});

afterAll(async () => {
  await host?.close?.();
  await endpoint?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("kernel error codes across a real provider connection", () => {
  it.each(KERNEL_ERROR_CODES.flatMap((code) => ["retryable", "permanent"].map((kind) => [code, kind])))(
    "%s (%s) raised in the provider reaches the host as itself",
    async (code, kind) => {
      const error = await host.getSession({ sessionId: `${code}/${kind}` }).catch((e: unknown) => e);
      expect(isRuntimeKernelError(error, code as RuntimeKernelErrorCode)).toBe(true);
      expect(error).toMatchObject({
        message: `the provider said ${code} about wörk`,
        retryable: kind === "retryable",
        workloadId: "wörk",
        method: "GetSession",
      });
    },
  );
});

describe("kernel error codes from a provider, through the plugin host", () => {
  let served: ServedEndpoint;
  beforeAll(async () => {
    // A provider whose StartSession fails with the kernel code the plugin's name says.
    const provider = {
      async getSupport() {
        return { canHostPlugins: true, hostServiceAccess: "unspecified", egressMode: "none" };
      },
      async startSession({ pluginName }: { pluginName: string }) {
        const code = pluginName.toUpperCase().replaceAll("-", "_") as RuntimeKernelErrorCode;
        throw new RuntimeKernelError(code, `no session: ${code}`);
      },
    } as unknown as RuntimeProvider;
    served = await serveRuntimeProvider(provider, `unix://${join(dir, "host-provider.sock")}`);
  });
  afterAll(async () => {
    await served?.close();
  });

  it.each(KERNEL_ERROR_CODES)(
    "%s raised in the provider reaches the host's caller as itself",
    async (code) => {
      const plugin = code.toLowerCase().replaceAll("_", "-");
      const host = createPluginHost({
        config: loadGestaltConfig({
          runtime: { providers: { remote: { source: served.address, default: true } } },
          plugins: { [plugin]: { command: "/bin/plugin", execution: { mode: "hosted" } } },
        }),
      });
      try {
        const error = await host.startPlugin(plugin).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(HostedPluginError);
        expect(error).toMatchObject({ step: "start-session" });
        const cause = (error as HostedPluginError).cause;
        expect(isRuntimeKernelError(cause, code)).toBe(true);
        expect(cause).toMatchObject({ method: "StartSession", message: `no session: ${code}` });
      } finally {
        await host.close();
      }
    },
  );
});
