import { describe, expect, it } from "vitest";
import { DialTargetError, parseDialTarget } from "../../../src/gestalt/dial.js";

describe("parseDialTarget", () => {
  it("reads unix://PATH, and a bare path as a unix socket", () => {
    expect(parseDialTarget("unix:///tmp/s/plugin.sock")).toEqual({
      scheme: "unix",
      path: "/tmp/s/plugin.sock",
      grpcTarget: "unix:/tmp/s/plugin.sock",
    });
    expect(parseDialTarget("unix:/tmp/p.sock")).toMatchObject({ scheme: "unix", path: "/tmp/p.sock" });
    expect(parseDialTarget("/tmp/s/plugin.sock")).toMatchObject({
      scheme: "unix",
      path: "/tmp/s/plugin.sock",
    });
    expect(parseDialTarget("relative/plugin.sock")).toMatchObject({
      scheme: "unix",
      path: "relative/plugin.sock",
    });
  });

  it("reads tcp:// and tls:// with a host and a port", () => {
    expect(parseDialTarget("tcp://127.0.0.1:50051")).toEqual({
      scheme: "tcp",
      host: "127.0.0.1",
      port: 50051,
      grpcTarget: "dns:127.0.0.1:50051",
    });
    expect(parseDialTarget("TLS://plugins.internal:8443")).toMatchObject({
      scheme: "tls",
      host: "plugins.internal",
      port: 8443,
    });
    expect(parseDialTarget("tcp://[::1]:9000")).toMatchObject({
      host: "::1",
      port: 9000,
      grpcTarget: "dns:[::1]:9000",
    });
  });

  it("refuses any other scheme by name", () => {
    expect(() => parseDialTarget("http://x:1")).toThrow(
      'hosted plugin dial target "http://x:1": unsupported scheme "http"',
    );
    expect(() => parseDialTarget("dns:///x:1")).toThrow('unsupported scheme "dns"');
    expect(() => parseDialTarget("http://x:1")).toThrow(DialTargetError);
  });

  it("refuses targets without what they need", () => {
    expect(() => parseDialTarget("")).toThrow(/empty/);
    expect(() => parseDialTarget("unix://")).toThrow(/needs a socket path/);
    expect(() => parseDialTarget("tcp://host")).toThrow(/must be tcp:\/\/HOST:PORT/);
    expect(() => parseDialTarget("tls://host:99999")).toThrow(/port must be at most 65535/);
    expect(() => parseDialTarget("tcp://host:0")).toThrow(/port must be between 1 and 65535/);
  });
});
