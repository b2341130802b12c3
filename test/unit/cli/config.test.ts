import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { backendOf, loadServeConfig, parseServeConfig } from "../../../src/cli/config.js";

describe("the serve config file", () => {
  const dir = mkdtempSync(join(tmpdir(), "rk-cfg-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads YAML and JSON alike, with files relative to the config", () => {
    const yaml = join(dir, "rk.yaml");
    writeFileSync(
      yaml,
      "kernelId: ci\nbackend: { type: docker, options: { socketPath: /d.sock } }\ntokenFile: token\n",
    );
    const json = join(dir, "rk.json");
    writeFileSync(
      json,
      JSON.stringify({ profiles: { a: { runnable: { command: ["true"] } } }, ownerQuota: 3 }),
    );
    const fromYaml = loadServeConfig(yaml);
    expect(fromYaml.tokenFile).toBe(join(dir, "token"));
    expect(backendOf(fromYaml)).toEqual({ type: "docker", options: { socketPath: "/d.sock" } });
    expect(loadServeConfig(json)).toEqual({
      profiles: { a: { runnable: { command: ["true"] } } },
      ownerQuota: 3,
    });
  });

  it("defaults to the process backend", () => {
    expect(backendOf(parseServeConfig({}))).toEqual({ type: "process", options: {} });
    expect(backendOf(parseServeConfig({ backend: "kubernetes" }))).toEqual({
      type: "kubernetes",
      options: {},
    });
  });

  it("refuses each bad field by its path, profiles checked by the kernel's own schema", () => {
    const attempt = () =>
      parseServeConfig({
        backend: "podman",
        profiles: { agent: { runnable: { command: "sleep 5" }, restart: { policy: "always" } } },
        ownerQuota: -1,
        token: "inline secrets are not accepted",
        http: { callbacks: { allowedHosts: ["hooks.example.com", "https://evil.example/path"] } },
      });
    expect(attempt).toThrow(/^Invalid config: /);
    for (const path of [
      "backend",
      "profiles.agent.runnable.command",
      "profiles.agent.restart.policy",
      "ownerQuota",
      "http.callbacks.allowedHosts.1",
    ]) {
      expect(attempt).toThrow(`${path}: `);
    }
    expect(attempt).toThrow('Unrecognized key: "token"');
  });

  it("says which file cannot be read or parsed", () => {
    expect(() => loadServeConfig(join(dir, "missing.yaml"))).toThrow("cannot read");
    const broken = join(dir, "broken.yaml");
    writeFileSync(broken, "profiles: [unclosed\n");
    expect(() => loadServeConfig(broken)).toThrow(`${broken} is not valid YAML or JSON`);
  });
});
