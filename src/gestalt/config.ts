/**
 * The Gestalt configuration subset this layer reads: runtime providers, the default runtime
 * provider, where each plugin and hosted agent runs, and egress. Parsed with zod from YAML or
 * a plain object; every refusal is an {@link InvalidSpecError} whose issues name the
 * offending path (for example `plugins.support.runtime.provider`).
 *
 * Both revisions' keys load. A current gestaltd (`gestaltd.config/v5`) writes a hosted
 * plugin's placement as `plugins.<n>.runtime` and the default as
 * `server.runtime.defaultProvider`; the older revision this project was specified from wrote
 * `plugins.<n>.execution: { mode: hosted, runtime }` and `server.runtime.defaultHostedProvider`.
 * An entry may use either form, not both. Keys outside the subset are kept as they are: a
 * full gestaltd configuration loads.
 * @module
 */
import { parseDocument } from "yaml";
import { z } from "zod";
import { InvalidSpecError } from "../errors.js";
import { ENV_NAME, HOST_PATTERN, HOST_PATTERN_MESSAGE } from "../name-rules.js";
import { issuesOf } from "../zod-issues.js";
import { hostedRuntimeOf, NO_PROVIDER_MESSAGE, serverDefaultOf } from "./provider-selection.js";

/** What `loadGestaltConfig` refuses with: an `INVALID_SPEC` error whose issues name each path. */
export type GestaltConfigError = InvalidSpecError;

/** `runtime.providers.<name>`: one runtime provider, by built-in driver or by source. */
export interface RuntimeProviderConfig {
  /** A driver the host knows (`local` is built in; others come from `createPluginHost({ drivers })`). */
  driver?: string;
  /**
   * Where the provider comes from when it is not a built-in driver:
   * - a gRPC address of a running provider (`unix:///run/provider.sock`, `dns:host:port`, or `{ address }`);
   * - an executable to launch as gestaltd does: `{ command, args? }`, or `{ path }` of a
   *   provider manifest (`kind: runtime`, `entrypoint.artifactPath`, `entrypoint.args`);
   * - any other object, for the host's `resolveSource` (for example gestaltd's `{ ref }`).
   */
  source?: string | Record<string, unknown>;
  /** The provider hosted plugins use when they name none and no default is configured. */
  default: boolean;
  /** Provider-specific settings: passed to its driver, or sent in ConfigureProvider. */
  config: Record<string, unknown>;
  /** Added to a launched provider's environment. */
  env: Record<string, string>;
}

/** `plugins.<n>.runtime` (or `execution.runtime`): where and how a hosted plugin runs. */
export interface HostedRuntimeConfig {
  /** A `runtime.providers` entry; absent: the default hosted provider. */
  provider?: string;
  image?: string;
  template?: string;
  /** Registry credentials for `image`. A secret. */
  imagePullAuth?: { dockerConfigJson: string };
  metadata: Record<string, string>;
  /** gestaltd's warm-pool settings (current revision), kept as written: this host does not pool. */
  pool?: Record<string, unknown>;
  /** gestaltd's workspace settings (current revision), kept as written: this host prepares none. */
  workspace?: Record<string, unknown>;
}

/** `plugins.<n>.execution` and `providers.agent.<n>.execution` (the older revision's form). */
export interface ExecutionConfig {
  /** `local`: the host runs it itself. `hosted`: a runtime provider runs it. */
  mode: "local" | "hosted";
  runtime?: HostedRuntimeConfig;
}

/** `plugins.<n>` (the keys this layer reads; every other key is kept). */
export interface PluginConfig {
  /** The program to run, in the session's filesystem. */
  command?: string;
  args: string[];
  env: Record<string, string>;
  /** Hostnames the plugin may reach, exact or `*.suffix`. Empty: the server's `egress` decides. */
  allowedHosts: string[];
  /** A binary on the host that a remote runtime may copy into the session. */
  hostBinary?: string;
  /**
   * The host services the plugin uses (names of `createPluginHost({ hostServices })`). A
   * runtime-kernel extension: gestaltd infers them from its other plugin keys.
   */
  hostServices: string[];
  /** Where the plugin runs when hosted (the current gestaltd form; its presence means hosted). */
  runtime?: HostedRuntimeConfig;
  /** Local or hosted, and where (the older revision's form). See {@link hostedRuntimeOf}. */
  execution?: ExecutionConfig;
  /** The plugin's own settings, sent in StartProvider when it is an integration provider. */
  config: Record<string, unknown>;
  [key: string]: unknown;
}

/** `providers.agent.<n>`: a hosted agent. Agents always need host-service access. */
export interface AgentConfig extends PluginConfig {}

/** `egress`: the server's outbound policy. */
export interface EgressConfig {
  /** Hostnames every plugin may reach unless the plugin lists its own. */
  allowedHosts: string[];
  /** The fate of a host when no allow-list applies. Default `allow`. */
  defaultAction: "allow" | "deny";
}

/** The parsed configuration subset. */
export interface GestaltConfig {
  server: {
    runtime: {
      /** The runtime provider of hosted plugins that name none (the current gestaltd key). */
      defaultProvider?: string;
      /** The same, as the older revision wrote it. At most one of the two is set. */
      defaultHostedProvider?: string;
      [key: string]: unknown;
    };
    [key: string]: unknown;
  };
  runtime: { providers: Record<string, RuntimeProviderConfig> };
  plugins: Record<string, PluginConfig>;
  providers: { agent: Record<string, AgentConfig>; [key: string]: unknown };
  egress: EgressConfig;
  [key: string]: unknown;
}

const allowedHostsSchema = z
  .array(z.string({ error: "must be a string" }).regex(HOST_PATTERN, HOST_PATTERN_MESSAGE), {
    error: "must be a list of hostnames",
  })
  .default([]);

const imagePullAuthSchema = z.strictObject({
  dockerConfigJson: z
    .string({ error: "is required: the Docker config JSON (with a non-empty auths) to pull the image" })
    .superRefine((text, ctx) => {
      // Never quote the value: it holds registry credentials.
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        ctx.addIssue({ code: "custom", message: "must be Docker config JSON (it does not parse as JSON)" });
        return;
      }
      const auths = (parsed as { auths?: unknown } | null)?.auths;
      if (
        typeof parsed !== "object" ||
        parsed === null ||
        typeof auths !== "object" ||
        auths === null ||
        Array.isArray(auths) ||
        Object.keys(auths).length === 0
      ) {
        ctx.addIssue({
          code: "custom",
          message: 'must be Docker config JSON with a non-empty "auths" object',
        });
      }
    }),
});

const runtimeBlockSchema = z
  .strictObject({
    provider: z.string({ error: "must be a string" }).min(1, "must not be empty").optional(),
    image: z.string({ error: "must be a string" }).min(1, "must not be empty").optional(),
    template: z.string({ error: "must be a string" }).min(1, "must not be empty").optional(),
    imagePullAuth: imagePullAuthSchema.optional(),
    metadata: z.record(z.string(), z.string({ error: "must be a string" })).default({}),
    pool: z.record(z.string(), z.unknown(), { error: "must be a mapping" }).optional(),
    workspace: z.record(z.string(), z.unknown(), { error: "must be a mapping" }).optional(),
  })
  .superRefine((runtime, ctx) => {
    if (runtime.imagePullAuth && !runtime.image) {
      ctx.addIssue({
        code: "custom",
        path: ["imagePullAuth"],
        message: "is set but no image is: set image too",
      });
    }
    for (const key of Object.keys(runtime.metadata)) {
      if (key.trim() === "")
        ctx.addIssue({ code: "custom", path: ["metadata"], message: "keys must not be empty" });
    }
  });

const executionSchema = z
  .strictObject({
    mode: z.enum(["local", "hosted"], { error: 'must be "local" or "hosted"' }).optional(),
    runtime: runtimeBlockSchema.optional(),
  })
  .superRefine((execution, ctx) => {
    if (execution.mode === "local" && execution.runtime) {
      ctx.addIssue({
        code: "custom",
        path: ["runtime"],
        message: "is only allowed with mode: hosted (mode is local)",
      });
    }
  })
  .transform((execution): ExecutionConfig => {
    // A runtime block with no mode means hosted; no block and no mode means local.
    const mode = execution.mode ?? (execution.runtime ? "hosted" : "local");
    return execution.runtime ? { mode, runtime: execution.runtime } : { mode };
  });

const pluginSchema = z
  .looseObject({
    command: z.string({ error: "must be a string" }).min(1, "must not be empty").optional(),
    args: z.array(z.string({ error: "must be a string" })).default([]),
    env: z.record(z.string(), z.string({ error: "must be a string" })).default({}),
    allowedHosts: allowedHostsSchema,
    hostBinary: z.string({ error: "must be a string" }).min(1, "must not be empty").optional(),
    hostServices: z.array(z.string().min(1, "must not be empty")).default([]),
    runtime: runtimeBlockSchema.optional(),
    execution: executionSchema.optional(),
    config: z.record(z.string(), z.unknown(), { error: "must be a mapping" }).default({}),
  })
  .superRefine((plugin, ctx) => {
    if (plugin.runtime !== undefined && plugin.execution !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["execution"],
        message:
          "cannot be set together with runtime: `runtime` is the current gestaltd form, `execution` the older one; keep one",
      });
    }
    for (const key of Object.keys(plugin.env)) {
      if (!ENV_NAME.test(key)) {
        ctx.addIssue({
          code: "custom",
          path: ["env", key],
          message: "must be a valid environment variable name",
        });
      }
    }
  })
  .transform((plugin) => plugin as PluginConfig);

/** `source: { command, args? }`: an executable provider to launch. */
const commandSourceSchema = z.strictObject({
  command: z.string({ error: "must be a string" }).min(1, "must not be empty"),
  args: z.array(z.string({ error: "must be a string" }), { error: "must be a list of strings" }).optional(),
});

/** `source: { path }`: a provider manifest (`kind: runtime`) whose entrypoint to launch. */
const manifestSourceSchema = z.strictObject({
  path: z.string({ error: "must be a string" }).min(1, "must not be empty"),
});

const providerEntrySchema = z
  .strictObject({
    driver: z.string({ error: "must be a string" }).min(1, "must not be empty").optional(),
    source: z
      .union([z.string().min(1, "must not be empty"), z.record(z.string(), z.unknown())], {
        error: "must be an address string or a source object",
      })
      .optional(),
    default: z.boolean({ error: "must be true or false" }).default(false),
    config: z.record(z.string(), z.unknown(), { error: "must be a mapping" }).default({}),
    env: z.record(z.string(), z.string({ error: "must be a string" })).default({}),
  })
  .superRefine((entry, ctx) => {
    for (const key of Object.keys(entry.env)) {
      if (!ENV_NAME.test(key)) {
        ctx.addIssue({
          code: "custom",
          path: ["env", key],
          message: "must be a valid environment variable name",
        });
      }
    }
    const source = entry.source;
    if (typeof source === "object") {
      // The launchable forms are checked here; any other object is the host's resolveSource's.
      const schema =
        "command" in source ? commandSourceSchema : "path" in source ? manifestSourceSchema : undefined;
      const parsed = schema?.safeParse(source);
      for (const issue of parsed && !parsed.success ? parsed.error.issues : []) {
        ctx.addIssue({ code: "custom", path: ["source", ...issue.path.map(String)], message: issue.message });
      }
    }
    if (entry.driver === undefined && entry.source === undefined) {
      ctx.addIssue({ code: "custom", message: "needs a driver (for example driver: local) or a source" });
    }
    if (entry.driver !== undefined && entry.source !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["source"],
        message: "cannot be set together with driver: choose one",
      });
    }
  });

const egressSchema = z
  .strictObject({
    allowedHosts: allowedHostsSchema,
    defaultAction: z.enum(["allow", "deny"], { error: 'must be "allow" or "deny"' }).default("allow"),
  })
  .default({ allowedHosts: [], defaultAction: "allow" });

const configSchema = z
  .looseObject({
    server: z
      .looseObject({
        runtime: z
          .looseObject({
            defaultProvider: z.string({ error: "must be a string" }).min(1, "must not be empty").optional(),
            defaultHostedProvider: z
              .string({ error: "must be a string" })
              .min(1, "must not be empty")
              .optional(),
          })
          .default({}),
      })
      .default({ runtime: {} }),
    runtime: z
      .looseObject({
        providers: z
          .record(z.string().min(1, "provider names must not be empty"), providerEntrySchema)
          .default({}),
      })
      .default({ providers: {} }),
    plugins: z.record(z.string().min(1, "plugin names must not be empty"), pluginSchema).default({}),
    providers: z
      .looseObject({
        agent: z.record(z.string().min(1, "agent names must not be empty"), pluginSchema).default({}),
      })
      .default({ agent: {} }),
    egress: egressSchema,
  })
  .superRefine((config, ctx) => {
    const providers = config.runtime.providers;
    const names = Object.keys(providers);
    const known = names.length ? names.join(", ") : "none";
    const defaults = names.filter((n) => providers[n]?.default);
    if (defaults.length > 1) {
      for (const name of defaults) {
        ctx.addIssue({
          code: "custom",
          path: ["runtime", "providers", name, "default"],
          message: `more than one runtime provider is the default (${defaults.join(", ")}): keep one`,
        });
      }
    }
    const server = config.server.runtime;
    if (server.defaultProvider !== undefined && server.defaultHostedProvider !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["server", "runtime", "defaultHostedProvider"],
        message:
          "cannot be set together with defaultProvider (the current gestaltd key for the same setting): keep one",
      });
    }
    const serverDefault = serverDefaultOf(config as GestaltConfig);
    if (serverDefault && !Object.hasOwn(providers, serverDefault.provider)) {
      ctx.addIssue({
        code: "custom",
        path: serverDefault.selectedBy.split("."),
        message: `unknown runtime provider "${serverDefault.provider}" (configured: ${known})`,
      });
    }
    const hasDefault = serverDefault !== undefined || defaults.length === 1;
    const check = (section: string[], entries: Record<string, PluginConfig>) => {
      for (const [name, entry] of Object.entries(entries)) {
        const hosted = hostedRuntimeOf(entry);
        if (!hosted) continue;
        const path = [...section, name, ...hosted.key.split("."), "provider"];
        const own = hosted.runtime.provider;
        if (own !== undefined && !Object.hasOwn(providers, own)) {
          ctx.addIssue({
            code: "custom",
            path,
            message: `unknown runtime provider "${own}" (configured: ${known})`,
          });
        } else if (own === undefined && !hasDefault) {
          ctx.addIssue({ code: "custom", path, message: NO_PROVIDER_MESSAGE });
        }
      }
    };
    check(["plugins"], config.plugins);
    check(["providers", "agent"], config.providers.agent);
  });

/**
 * Parses and validates the Gestalt configuration subset, from YAML text or an object.
 * Throws an `INVALID_SPEC` {@link InvalidSpecError} whose `issues` name every bad path.
 *
 * @example
 * ```ts
 * const config = loadGestaltConfig(`
 * runtime:
 *   providers:
 *     local: { driver: local, default: true }
 * plugins:
 *   support:
 *     command: ./support-plugin
 *     execution: { mode: hosted }
 * `);
 * ```
 */
export function loadGestaltConfig(input: string | Record<string, unknown>): GestaltConfig {
  let value: unknown = input;
  if (typeof input === "string") {
    const document = parseDocument(input, { prettyErrors: true });
    if (document.errors.length > 0) {
      throw new InvalidSpecError(
        document.errors.map((e) => ({ path: "", message: `YAML: ${e.message.split("\n")[0]}` })),
        { subject: "gestalt config" },
      );
    }
    value = document.toJS() ?? {};
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidSpecError([{ path: "", message: "must be a mapping at the top level" }], {
      subject: "gestalt config",
    });
  }
  const result = configSchema.safeParse(value);
  if (!result.success)
    throw new InvalidSpecError(issuesOf(result.error, { unknownKey: "is not a known key" }), {
      subject: "gestalt config",
    });
  return result.data as unknown as GestaltConfig;
}

/** Which plugin-like entry: a plugin (`plugins.<n>`) or a hosted agent (`providers.agent.<n>`). */
export type PluginKind = "plugin" | "agent";
