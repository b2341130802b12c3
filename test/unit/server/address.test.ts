import { chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ensureSocketDir, isLoopbackHost } from "../../../src/net/listen.js";
import {
  ADDRESS_ENV,
  defaultAddress,
  defaultSocketPath,
  grpcTarget,
  parseAddress,
} from "../../../src/server/address.js";

describe("server addresses", () => {
  it("defaults to a socket under $XDG_RUNTIME_DIR, else a per-user directory in the temp dir", () => {
    expect(defaultSocketPath({ XDG_RUNTIME_DIR: "/run/user/1000" })).toBe(
      "/run/user/1000/runtime-kernel/runtime.sock",
    );
    expect(defaultSocketPath({})).toBe(join(tmpdir(), `runtime-kernel-${process.getuid!()}`, "runtime.sock"));
    expect(defaultSocketPath({ XDG_RUNTIME_DIR: "relative/dir" })).toMatch(
      /runtime-kernel-\d+\/runtime.sock$/,
    );
  });

  it("lets $RUNTIME_KERNEL_ADDRESS override the default for servers and clients alike", () => {
    expect(defaultAddress({ [ADDRESS_ENV]: "127.0.0.1:7443" })).toBe("127.0.0.1:7443");
    expect(defaultAddress({ XDG_RUNTIME_DIR: "/run/user/7" })).toBe(
      "unix:/run/user/7/runtime-kernel/runtime.sock",
    );
  });

  it.each([
    ["unix:/tmp/a.sock", { kind: "unix", path: "/tmp/a.sock" }],
    ["unix:///tmp/a.sock", { kind: "unix", path: "/tmp/a.sock" }],
    ["/tmp/a.sock", { kind: "unix", path: "/tmp/a.sock" }],
    ["unix:rel.sock", { kind: "unix", path: resolve("rel.sock") }],
    ["127.0.0.1:50051", { kind: "tcp", host: "127.0.0.1", port: 50051 }],
    ["localhost:0", { kind: "tcp", host: "localhost", port: 0 }],
    ["[::1]:8080", { kind: "tcp", host: "::1", port: 8080 }],
  ])("parses %s", (input, expected) => {
    expect(parseAddress(input)).toEqual(expected);
  });

  it.each([
    ["", "must not be empty"],
    ["unix:", "needs a socket path"],
    ["unix://relative", "absolute path"],
    ["example.com", "must be unix:PATH or HOST:PORT"],
    ["127.0.0.1:70000", "at most 65535"],
    [`unix:/tmp/${"x".repeat(120)}`, "longer than 107 bytes"],
  ])("refuses %j, naming the address", (input, message) => {
    expect(() => parseAddress(input)).toThrow(/address: /);
    expect(() => parseAddress(input)).toThrow(message);
  });

  it("formats targets the way grpc-js dials them", () => {
    expect(grpcTarget({ kind: "unix", path: "/tmp/s" })).toBe("unix:/tmp/s");
    expect(grpcTarget({ kind: "tcp", host: "::1", port: 5 })).toBe("[::1]:5");
    expect(grpcTarget({ kind: "tcp", host: "127.0.0.1", port: 5 })).toBe("127.0.0.1:5");
  });

  it("knows which hosts only this machine can reach", () => {
    for (const host of ["127.0.0.1", "127.3.2.1", "localhost", "::1"])
      expect(isLoopbackHost(host)).toBe(true);
    for (const host of ["0.0.0.0", "::", "10.0.0.1", "example.com"]) expect(isLoopbackHost(host)).toBe(false);
  });

  describe("the socket directory", () => {
    const root = mkdtempSync(join(tmpdir(), "rk-addr-"));
    afterAll(() => rmSync(root, { recursive: true, force: true }));

    it("is created private to the user", () => {
      const dir = join(root, "private");
      ensureSocketDir(dir, { private: true });
      expect(() => ensureSocketDir(dir, { private: true })).not.toThrow();
    });

    it("is refused as the private default when others can write to it", () => {
      const dir = join(root, "shared");
      mkdirSync(dir);
      chmodSync(dir, 0o777);
      expect(() => ensureSocketDir(dir, { private: true })).toThrow(
        "socket directory is writable by other users",
      );
      expect(() => ensureSocketDir(dir, { private: false })).not.toThrow();
    });

    it("is refused as the private default when another user could rename it away from a directory above", () => {
      const open = join(root, "open");
      mkdirSync(open);
      chmodSync(open, 0o777);
      // The socket's own directory would be 0700, but anyone may replace it inside `open`.
      expect(() => ensureSocketDir(join(open, "runtime-kernel"), { private: true })).toThrow(
        "is writable by other users and not sticky",
      );
    });
  });
});
