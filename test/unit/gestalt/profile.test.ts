import { describe, expect, it } from "vitest";
import { effectiveProfile, egressDelivery, hostCanRelay, profilePair } from "../../../src/gestalt/profile.js";
import type { RuntimeSupport } from "../../../src/gestalt/provider.js";

const RELAY_HOST = { publicBaseUrl: "https://gestalt.example.com", encryptionKey: "k" };

describe("hostCanRelay", () => {
  it("needs a non-empty encryption key and an https base URL with a host and nothing after it", () => {
    expect(hostCanRelay(RELAY_HOST)).toBe(true);
    expect(hostCanRelay({ ...RELAY_HOST, publicBaseUrl: "https://gestalt.example.com/" })).toBe(true);
    expect(hostCanRelay({ ...RELAY_HOST, publicBaseUrl: "https://gestalt.example.com:8443" })).toBe(true);
    expect(hostCanRelay({ ...RELAY_HOST, encryptionKey: "" })).toBe(false);
    expect(hostCanRelay({ publicBaseUrl: RELAY_HOST.publicBaseUrl })).toBe(false);
    expect(hostCanRelay({ encryptionKey: "k" })).toBe(false);
    expect(hostCanRelay({ ...RELAY_HOST, publicBaseUrl: "http://gestalt.example.com" })).toBe(false);
    expect(hostCanRelay({ ...RELAY_HOST, publicBaseUrl: "https://gestalt.example.com/base" })).toBe(false);
    expect(hostCanRelay({ ...RELAY_HOST, publicBaseUrl: "https://gestalt.example.com?x=1" })).toBe(false);
    expect(hostCanRelay({ ...RELAY_HOST, publicBaseUrl: "https://gestalt.example.com/?" })).toBe(false);
    expect(hostCanRelay({ ...RELAY_HOST, publicBaseUrl: "https://gestalt.example.com#top" })).toBe(false);
    expect(hostCanRelay({ ...RELAY_HOST, publicBaseUrl: "not a url" })).toBe(false);
  });
});

describe("effectiveProfile", () => {
  const support = (
    hostServiceAccess: RuntimeSupport["hostServiceAccess"],
    egressMode: RuntimeSupport["egressMode"],
  ) => ({
    canHostPlugins: true,
    hostServiceAccess,
    egressMode,
  });

  it("keeps direct access and its hostname egress, delivered by the runtime", () => {
    for (const host of [{}, RELAY_HOST]) {
      const effective = effectiveProfile(support("direct", "hostname"), host);
      expect(effective).toEqual({
        canHostPlugins: true,
        hostServiceAccess: "direct",
        egressMode: "hostname",
      });
      expect(egressDelivery(effective)).toBe("runtime");
    }
  });

  it("upgrades access none to relay when the host can relay, and keeps hostname egress through the public proxy", () => {
    const effective = effectiveProfile(support("none", "hostname"), RELAY_HOST);
    expect(effective).toEqual({ canHostPlugins: true, hostServiceAccess: "relay", egressMode: "hostname" });
    expect(egressDelivery(effective)).toBe("public-proxy");
  });

  it("drops hostname egress when access stays none", () => {
    const effective = effectiveProfile(support("none", "hostname"), {});
    expect(effective).toEqual({ canHostPlugins: true, hostServiceAccess: "none", egressMode: "none" });
    expect(egressDelivery(effective)).toBe("none");
  });

  it("treats unspecified access like none", () => {
    expect(effectiveProfile(support("unspecified", "hostname"), RELAY_HOST).hostServiceAccess).toBe("relay");
    expect(effectiveProfile(support("unspecified", "hostname"), {}).hostServiceAccess).toBe("none");
  });

  it("leaves other egress modes as advertised", () => {
    expect(effectiveProfile(support("none", "cidr"), {}).egressMode).toBe("cidr");
    expect(effectiveProfile(support("direct", "none"), {}).egressMode).toBe("none");
  });

  it("shows the advertised profile beside the effective one", () => {
    expect(profilePair(support("none", "hostname"), RELAY_HOST)).toEqual({
      advertised: { canHostPlugins: true, hostServiceAccess: "none", egressMode: "hostname" },
      effective: { canHostPlugins: true, hostServiceAccess: "relay", egressMode: "hostname" },
    });
  });
});
