import { describe, expect, it } from "vitest";
import type { InvalidSpecError } from "../../../src/errors.js";
import { loadGestaltConfig } from "../../../src/gestalt/config.js";
import { hostedRuntimeOf, selectRuntimeProvider } from "../../../src/gestalt/provider-selection.js";

const DOCKER_CONFIG = JSON.stringify({ auths: { "registry.example.com": { auth: "dXNlcjpzZWNyZXQ=" } } });

function refusal(input: string | Record<string, unknown>): InvalidSpecError {
  try {
    loadGestaltConfig(input);
  } catch (error) {
    return error as InvalidSpecError;
  }
  throw new Error("expected the config to be refused");
}

function issue(input: string | Record<string, unknown>, path: string): string {
  const error = refusal(input);
  expect(error.code).toBe("INVALID_SPEC");
  const found = error.issues.find((i) => i.path === path);
  if (!found) throw new Error(`no issue at ${path}; issues: ${JSON.stringify(error.issues)}`);
  expect(error.message).toContain(path);
  return found.message;
}

describe("loadGestaltConfig", () => {
  it("reads the runtime subset from YAML and keeps every other key", () => {
    const config = loadGestaltConfig(`
server:
  public: { port: 8080 }
  runtime:
    defaultHostedProvider: local
runtime:
  providers:
    local:
      driver: local
    remote:
      source: unix:///run/provider.sock
      config: { region: eu }
plugins:
  support:
    source: { path: ./support/manifest.yaml }
    command: ./support-plugin
    args: [--verbose]
    env: { LOG_LEVEL: debug }
    allowedHosts: [api.example.com, "*.github.com"]
    execution:
      mode: hosted
      runtime:
        provider: remote
        image: support:1
        imagePullAuth: { dockerConfigJson: '${DOCKER_CONFIG}' }
        metadata: { team: care }
providers:
  agent:
    helper:
      command: ./agent
      execution: { mode: hosted }
egress:
  defaultAction: deny
`);
    expect(config.server.runtime.defaultHostedProvider).toBe("local");
    expect(config.server.public).toEqual({ port: 8080 });
    expect(config.runtime.providers.local).toEqual({ driver: "local", default: false, config: {}, env: {} });
    expect(config.runtime.providers.remote?.source).toBe("unix:///run/provider.sock");
    const support = config.plugins.support!;
    expect(support.source).toEqual({ path: "./support/manifest.yaml" });
    expect(support.args).toEqual(["--verbose"]);
    expect(support.allowedHosts).toEqual(["api.example.com", "*.github.com"]);
    expect(support.execution).toEqual({
      mode: "hosted",
      runtime: {
        provider: "remote",
        image: "support:1",
        imagePullAuth: { dockerConfigJson: DOCKER_CONFIG },
        metadata: { team: "care" },
      },
    });
    expect(config.providers.agent.helper?.execution?.mode).toBe("hosted");
    expect(config.egress).toEqual({ allowedHosts: [], defaultAction: "deny" });
  });

  it("accepts a plain object as well as YAML", () => {
    const config = loadGestaltConfig({
      runtime: { providers: { local: { driver: "local", default: true } } },
    });
    expect(config.runtime.providers.local?.default).toBe(true);
    expect(config.plugins).toEqual({});
    expect(config.egress.defaultAction).toBe("allow");
  });

  it("treats a runtime block without a mode as hosted, and no execution block as local", () => {
    const config = loadGestaltConfig({
      runtime: { providers: { local: { driver: "local", default: true } } },
      plugins: { a: { execution: { runtime: { template: "small" } } }, b: { execution: {} } },
    });
    expect(config.plugins.a?.execution?.mode).toBe("hosted");
    expect(config.plugins.b?.execution?.mode).toBe("local");
  });

  it("refuses a runtime block under mode local", () => {
    expect(
      issue({ plugins: { a: { execution: { mode: "local", runtime: {} } } } }, "plugins.a.execution.runtime"),
    ).toMatch(/only allowed with mode: hosted/);
  });

  it("refuses an execution mode other than local or hosted", () => {
    expect(issue({ plugins: { a: { execution: { mode: "remote" } } } }, "plugins.a.execution.mode")).toMatch(
      /"local" or "hosted"/,
    );
  });

  it("refuses an unknown provider name in a plugin's and an agent's runtime", () => {
    const input = {
      runtime: { providers: { local: { driver: "local" } } },
      plugins: { a: { execution: { runtime: { provider: "nope" } } } },
      providers: { agent: { b: { execution: { runtime: { provider: "gone" } } } } },
    };
    expect(issue(input, "plugins.a.execution.runtime.provider")).toBe(
      'unknown runtime provider "nope" (configured: local)',
    );
    expect(issue(input, "providers.agent.b.execution.runtime.provider")).toBe(
      'unknown runtime provider "gone" (configured: local)',
    );
  });

  it("refuses an unknown default hosted provider", () => {
    expect(
      issue(
        {
          server: { runtime: { defaultHostedProvider: "docker" } },
          runtime: { providers: { local: { driver: "local" } } },
        },
        "server.runtime.defaultHostedProvider",
      ),
    ).toBe('unknown runtime provider "docker" (configured: local)');
  });

  it("refuses several default providers, naming each", () => {
    const input = {
      runtime: {
        providers: { a: { driver: "local", default: true }, b: { driver: "local", default: true } },
      },
    };
    expect(issue(input, "runtime.providers.a.default")).toMatch(
      /more than one runtime provider is the default \(a, b\)/,
    );
    expect(issue(input, "runtime.providers.b.default")).toMatch(/more than one/);
  });

  it("refuses a hosted plugin that no provider can be selected for", () => {
    expect(
      issue({ plugins: { a: { execution: { mode: "hosted" } } } }, "plugins.a.execution.runtime.provider"),
    ).toMatch(/no runtime provider for this hosted plugin/);
  });

  it("refuses imagePullAuth without an image", () => {
    const input = {
      runtime: { providers: { d: { driver: "docker", default: true } } },
      plugins: { a: { execution: { runtime: { imagePullAuth: { dockerConfigJson: DOCKER_CONFIG } } } } },
    };
    expect(issue(input, "plugins.a.execution.runtime.imagePullAuth")).toMatch(/no image is: set image too/);
  });

  it("refuses imagePullAuth without dockerConfigJson", () => {
    const input = {
      runtime: { providers: { d: { driver: "docker", default: true } } },
      plugins: { a: { execution: { runtime: { image: "x:1", imagePullAuth: {} } } } },
    };
    expect(issue(input, "plugins.a.execution.runtime.imagePullAuth.dockerConfigJson")).toMatch(/is required/);
  });

  it("refuses dockerConfigJson that is not Docker config JSON with a non-empty auths, without quoting it", () => {
    const base = (json: string) => ({
      runtime: { providers: { d: { driver: "docker", default: true } } },
      plugins: { a: { execution: { runtime: { image: "x:1", imagePullAuth: { dockerConfigJson: json } } } } },
    });
    const path = "plugins.a.execution.runtime.imagePullAuth.dockerConfigJson";
    expect(issue(base("{not json s3cret"), path)).toMatch(/does not parse as JSON/);
    expect(issue(base('{"auths":{}}'), path)).toMatch(/non-empty "auths"/);
    expect(issue(base('{"credsStore":"s3cret"}'), path)).toMatch(/non-empty "auths"/);
    expect(refusal(base('{"credsStore":"s3cret"}')).message).not.toContain("s3cret");
    expect(refusal(base("{not json s3cret")).message).not.toContain("s3cret");
  });

  it("refuses empty metadata keys", () => {
    const input = {
      runtime: { providers: { d: { driver: "local", default: true } } },
      plugins: { a: { execution: { runtime: { metadata: { "": "x" } } } } },
    };
    const error = refusal(input);
    const found = error.issues.find((i) => i.path.startsWith("plugins.a.execution.runtime.metadata"));
    expect(found?.message).toMatch(/must not be empty/);
  });

  it("reads the current gestaltd form: plugins.<n>.runtime means hosted, server.runtime.defaultProvider", () => {
    const config = loadGestaltConfig(`
apiVersion: gestaltd.config/v5
server:
  runtime: { defaultProvider: kernel, relayBaseUrl: https://relay.example.com }
runtime:
  providers:
    kernel: { source: unix:///run/kernel.sock }
    local: { driver: local }
plugins:
  support:
    command: ./support
    runtime:
      provider: local
      template: small
      metadata: { team: care }
      workspace: { prepareTimeout: 30s, git: { allowedRepositories: [github.com/acme/app] } }
providers:
  agent:
    helper:
      command: ./agent
      runtime:
        pool: { minReadyInstances: 1, restartPolicy: always }
`);
    expect(hostedRuntimeOf(config.plugins.support!)).toEqual({
      key: "runtime",
      runtime: {
        provider: "local",
        template: "small",
        metadata: { team: "care" },
        workspace: { prepareTimeout: "30s", git: { allowedRepositories: ["github.com/acme/app"] } },
      },
    });
    expect(selectRuntimeProvider(config, "plugin", "support")).toEqual({
      provider: "local",
      selectedBy: "runtime.provider",
    });
    expect(selectRuntimeProvider(config, "agent", "helper")).toEqual({
      provider: "kernel",
      selectedBy: "server.runtime.defaultProvider",
    });
    expect(config.providers.agent.helper?.runtime?.pool).toEqual({
      minReadyInstances: 1,
      restartPolicy: "always",
    });
    expect(config.server.runtime.relayBaseUrl).toBe("https://relay.example.com");
  });

  it("runs an entry locally when it has neither a runtime block nor a hosted execution", () => {
    const config = loadGestaltConfig({ plugins: { a: {}, b: { execution: { mode: "local" } } } });
    expect(hostedRuntimeOf(config.plugins.a!)).toBeUndefined();
    expect(hostedRuntimeOf(config.plugins.b!)).toBeUndefined();
  });

  it("refuses an entry that writes both forms, and a server that sets both default keys", () => {
    const input = {
      server: { runtime: { defaultProvider: "local", defaultHostedProvider: "local" } },
      runtime: { providers: { local: { driver: "local" } } },
      plugins: { a: { runtime: {}, execution: { mode: "hosted" } } },
      providers: { agent: { b: { runtime: {}, execution: { mode: "local" } } } },
    };
    expect(issue(input, "plugins.a.execution")).toMatch(/cannot be set together with runtime/);
    expect(issue(input, "providers.agent.b.execution")).toMatch(/cannot be set together with runtime/);
    expect(issue(input, "server.runtime.defaultHostedProvider")).toMatch(
      /cannot be set together with defaultProvider/,
    );
  });

  it("names the key the user wrote when a provider is unknown or none can be selected", () => {
    const unknown = {
      server: { runtime: { defaultProvider: "gone" } },
      runtime: { providers: { local: { driver: "local" } } },
      plugins: { a: { runtime: { provider: "nope" } } },
    };
    expect(issue(unknown, "plugins.a.runtime.provider")).toBe(
      'unknown runtime provider "nope" (configured: local)',
    );
    expect(issue(unknown, "server.runtime.defaultProvider")).toBe(
      'unknown runtime provider "gone" (configured: local)',
    );
    expect(
      issue(
        { runtime: { providers: { local: { driver: "local" } } }, plugins: { a: { runtime: {} } } },
        "plugins.a.runtime.provider",
      ),
    ).toMatch(/no runtime provider for this hosted plugin: .*server\.runtime\.defaultProvider/);
  });

  it("refuses unknown keys and bad values in the current form's runtime block", () => {
    expect(issue({ plugins: { a: { runtime: { provdier: "x" } } } }, "plugins.a.runtime.provdier")).toBe(
      "is not a known key",
    );
    expect(issue({ plugins: { a: { runtime: { pool: 3 } } } }, "plugins.a.runtime.pool")).toBe(
      "must be a mapping",
    );
  });

  it("refuses a provider entry with neither or both of driver and source", () => {
    expect(issue({ runtime: { providers: { x: {} } } }, "runtime.providers.x")).toMatch(/needs a driver/);
    expect(
      issue(
        { runtime: { providers: { x: { driver: "local", source: "unix:///p" } } } },
        "runtime.providers.x.source",
      ),
    ).toMatch(/cannot be set together with driver/);
  });

  it("refuses unknown keys inside the blocks it owns, naming the key", () => {
    expect(
      issue({ plugins: { a: { execution: { mode: "local", modee: 1 } } } }, "plugins.a.execution.modee"),
    ).toBe("is not a known key");
    expect(
      issue(
        { runtime: { providers: { x: { driver: "local", defualt: true } } } },
        "runtime.providers.x.defualt",
      ),
    ).toBe("is not a known key");
  });

  it("refuses malformed allow-list entries and egress actions", () => {
    expect(issue({ egress: { allowedHosts: ["https://x.com"] } }, "egress.allowedHosts.0")).toMatch(
      /hostname or \*\.suffix/,
    );
    expect(issue({ plugins: { a: { allowedHosts: ["x.com:443"] } } }, "plugins.a.allowedHosts.0")).toMatch(
      /no scheme, port/,
    );
    expect(issue({ egress: { defaultAction: "block" } }, "egress.defaultAction")).toMatch(
      /"allow" or "deny"/,
    );
  });

  it("reports YAML syntax errors with their line", () => {
    const error = refusal("plugins: [a\nb: 2");
    expect(error.message).toMatch(/YAML: .*line 2/);
  });

  it("refuses a document that is not a mapping", () => {
    expect(refusal("- a\n- b").message).toMatch(/must be a mapping at the top level/);
  });
});

describe("selectRuntimeProvider", () => {
  const providers = { a: { driver: "local" }, b: { driver: "local", default: true } };

  it("prefers the plugin's own provider", () => {
    const config = loadGestaltConfig({
      server: { runtime: { defaultHostedProvider: "a" } },
      runtime: { providers },
      plugins: { p: { execution: { runtime: { provider: "b" } } } },
    });
    expect(selectRuntimeProvider(config, "plugin", "p")).toEqual({
      provider: "b",
      selectedBy: "execution.runtime.provider",
    });
  });

  it("then server.runtime.defaultHostedProvider", () => {
    const config = loadGestaltConfig({
      server: { runtime: { defaultHostedProvider: "a" } },
      runtime: { providers },
      plugins: { p: { execution: { mode: "hosted" } } },
    });
    expect(selectRuntimeProvider(config, "plugin", "p")).toEqual({
      provider: "a",
      selectedBy: "server.runtime.defaultHostedProvider",
    });
  });

  it("then the single provider with default: true", () => {
    const config = loadGestaltConfig({
      runtime: { providers },
      providers: { agent: { g: { execution: { mode: "hosted" } } } },
    });
    expect(selectRuntimeProvider(config, "agent", "g")).toEqual({ provider: "b", selectedBy: "default" });
  });

  it("names the path when the plugin is not configured", () => {
    const config = loadGestaltConfig({ runtime: { providers } });
    expect(() => selectRuntimeProvider(config, "plugin", "ghost")).toThrow(
      /plugins\.ghost: is not configured/,
    );
  });
});

describe("plugin keys", () => {
  it("refuses an environment variable name that is not one, naming it", () => {
    expect(issue({ plugins: { a: { env: { "BAD-NAME": "x" } } } }, "plugins.a.env.BAD-NAME")).toMatch(
      /valid environment variable name/,
    );
  });
});
