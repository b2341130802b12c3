/**
 * The provider lifecycle: the handshake a host performs (identity, configure, identity
 * again) and what it refuses, and the rules a served provider applies.
 */
import { describe, expect, it } from "vitest";
import {
  GESTALT_PROTOCOL_VERSION,
  handshakeRuntimeProvider,
  type ProviderIdentity,
  type ProviderLifecycle,
} from "../../../src/gestalt/index.js";
import { lifecycleImplementation } from "../../../src/gestalt/lifecycle.js";

const RUNTIME: ProviderIdentity = {
  kind: "runtime",
  name: "r",
  displayName: "",
  description: "",
  version: "1",
  warnings: [],
  minProtocolVersion: 3,
  maxProtocolVersion: 3,
};

function lifecycle(identity: Partial<ProviderIdentity>, echo = 3): ProviderLifecycle & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async getIdentity() {
      calls.push("GetProviderIdentity");
      return { ...RUNTIME, ...identity, ...(calls.length > 1 ? { displayName: "configured" } : {}) };
    },
    async configure(request) {
      calls.push(
        `ConfigureProvider ${request.name} ${JSON.stringify(request.config)} ${request.protocolVersion}`,
      );
      return { protocolVersion: echo };
    },
    async healthCheck() {
      return { ready: true };
    },
    async start() {
      return { protocolVersion: 3 };
    },
  };
}

describe("handshakeRuntimeProvider", () => {
  it("asks the identity, configures with protocol 3, and returns the identity it gives once configured", async () => {
    const l = lifecycle({});
    const identity = await handshakeRuntimeProvider(l, { name: "docker", config: { a: 1 } });
    expect(l.calls).toEqual([
      "GetProviderIdentity",
      'ConfigureProvider docker {"a":1} 3',
      "GetProviderIdentity",
    ]);
    expect(identity.displayName).toBe("configured");
  });

  it("takes a bound of 0 as no bound", async () => {
    await expect(
      handshakeRuntimeProvider(lifecycle({ minProtocolVersion: 0, maxProtocolVersion: 0 }), { name: "x" }),
    ).resolves.toMatchObject({ kind: "runtime" });
  });

  it.each([
    [
      { kind: "integration" as const },
      3,
      "is not a runtime provider: it says it is of kind PROVIDER_KIND_INTEGRATION, not PROVIDER_KIND_RUNTIME",
    ],
    [{ kind: "unspecified" as const }, 3, "of kind PROVIDER_KIND_UNSPECIFIED"],
    [
      { minProtocolVersion: 4, maxProtocolVersion: 5 },
      3,
      "does not speak protocol version 3: it speaks 4 to 5",
    ],
    [
      { minProtocolVersion: 1, maxProtocolVersion: 2 },
      3,
      "does not speak protocol version 3: it speaks 1 to 2",
    ],
    [{}, 2, "answered ConfigureProvider with protocol version 2, and this host speaks 3"],
  ])("refuses %j (echo %d): %s", async (identity, echo, message) => {
    const l = lifecycle(identity, echo);
    const error = await handshakeRuntimeProvider(l, { name: "p" }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "UNSUPPORTED",
      message: expect.stringContaining(`runtime provider "p" `),
    });
    expect((error as Error).message).toContain(message);
    // Refused before configuring, unless the refusal is about what configure answered.
    expect(l.calls.some((c) => c.startsWith("ConfigureProvider"))).toBe(echo !== 3);
  });
});

describe("a served provider's lifecycle", () => {
  it("always says RUNTIME and 3 to 3, whatever the identity hook says", async () => {
    const served = lifecycleImplementation({ identity: () => ({ name: "k", version: "9" }) });
    expect(await served.getProviderIdentity({})).toMatchObject({
      kind: 10,
      name: "k",
      version: "9",
      minProtocolVersion: GESTALT_PROTOCOL_VERSION,
      maxProtocolVersion: GESTALT_PROTOCOL_VERSION,
    });
  });

  it("configures only at protocol 3, and passes the config to the hook", async () => {
    const seen: unknown[] = [];
    const served = lifecycleImplementation({ configure: (r) => void seen.push(r) });
    await expect(
      served.configureProvider({ name: "k", config: { a: 1 }, protocolVersion: 2 }, {}),
    ).rejects.toMatchObject({
      code: "WORKLOAD_CONFLICT",
      message: "host requested protocol version 2, provider requires 3",
    });
    expect(seen).toEqual([]);
    expect(await served.configureProvider({ name: "k", config: { a: 1 }, protocolVersion: 3 }, {})).toEqual({
      protocolVersion: 3,
    });
    expect(seen).toEqual([{ name: "k", config: { a: 1 } }]);
  });

  it("reports health from the hook, a throw as not ready", async () => {
    expect(await lifecycleImplementation().healthCheck({})).toEqual({ ready: true, message: "" });
    const failing = lifecycleImplementation({
      healthCheck: async () => {
        throw new Error("no backend");
      },
    });
    expect(await failing.healthCheck({})).toEqual({ ready: false, message: "no backend" });
  });
});
