/**
 * Provider selection: where a hosted plugin or agent runs, in whichever revision's form its
 * configuration was written, and which runtime provider it is placed on. Reads a parsed
 * {@link GestaltConfig}; it must not parse or load anything itself.
 * @module
 */
import { InvalidSpecError } from "../errors.js";
import type { GestaltConfig, HostedRuntimeConfig, PluginConfig, PluginKind } from "./config.js";

/** The config path of an entry, for messages. */
export function entryPath(kind: PluginKind, name: string): string {
  return kind === "plugin" ? `plugins.${name}` : `providers.agent.${name}`;
}

/** How the runtime provider of a hosted entry was chosen: the key that chose it, as written. */
export type ProviderSelectionSource =
  | "runtime.provider"
  | "execution.runtime.provider"
  | "server.runtime.defaultProvider"
  | "server.runtime.defaultHostedProvider"
  | "default";

/** Why no provider could be selected, and what to set. */
export const NO_PROVIDER_MESSAGE =
  "no runtime provider for this hosted plugin: set it here, or server.runtime.defaultProvider, or default: true on one runtime.providers entry";

/**
 * Where a plugin or agent runs when hosted, in whichever revision's form it was written, and
 * the key it was written under; `undefined` when it runs locally (no `runtime` block, and no
 * `execution` or `execution.mode: local`).
 */
export function hostedRuntimeOf(
  entry: PluginConfig,
): { runtime: HostedRuntimeConfig; key: "runtime" | "execution.runtime" } | undefined {
  if (entry.runtime) return { runtime: entry.runtime, key: "runtime" };
  if (entry.execution?.mode !== "hosted") return undefined;
  return { runtime: entry.execution.runtime ?? { metadata: {} }, key: "execution.runtime" };
}

/** The server-wide default runtime provider, under whichever key it was written. */
export function serverDefaultOf(
  config: GestaltConfig,
): { provider: string; selectedBy: ProviderSelectionSource } | undefined {
  const { defaultProvider, defaultHostedProvider } = config.server.runtime;
  if (defaultProvider !== undefined)
    return { provider: defaultProvider, selectedBy: "server.runtime.defaultProvider" };
  if (defaultHostedProvider !== undefined)
    return { provider: defaultHostedProvider, selectedBy: "server.runtime.defaultHostedProvider" };
  return undefined;
}

/**
 * The runtime provider of hosted entries that name none: `server.runtime.defaultProvider` (or
 * the older `defaultHostedProvider`), else the single `runtime.providers` entry with
 * `default: true`; `undefined` when neither applies.
 */
export function defaultRuntimeProvider(
  config: GestaltConfig,
): { provider: string; selectedBy: ProviderSelectionSource } | undefined {
  const server = serverDefaultOf(config);
  if (server) return server;
  const defaults = Object.entries(config.runtime.providers).filter(([, p]) => p.default);
  return defaults.length === 1 ? { provider: defaults[0]![0], selectedBy: "default" } : undefined;
}

/**
 * Selects the runtime provider of a hosted plugin or agent: its own `runtime.provider` (or
 * `execution.runtime.provider`), else the {@link defaultRuntimeProvider}. Throws
 * `INVALID_SPEC` naming the path when none applies.
 */
export function selectRuntimeProvider(
  config: GestaltConfig,
  kind: PluginKind,
  name: string,
): { provider: string; selectedBy: ProviderSelectionSource } {
  const entry = kind === "plugin" ? config.plugins[name] : config.providers.agent[name];
  const path = entryPath(kind, name);
  if (!entry) {
    const known = Object.keys(kind === "plugin" ? config.plugins : config.providers.agent);
    throw new InvalidSpecError(
      [{ path, message: `is not configured (configured: ${known.join(", ") || "none"})` }],
      { subject: "gestalt config" },
    );
  }
  const hosted = hostedRuntimeOf(entry);
  const key = hosted?.key ?? "runtime";
  const own = hosted?.runtime.provider;
  if (own !== undefined) return { provider: own, selectedBy: `${key}.provider` };
  const fallback = defaultRuntimeProvider(config);
  if (fallback) return fallback;
  const several = Object.values(config.runtime.providers).filter((p) => p.default).length > 1;
  throw new InvalidSpecError(
    [
      {
        path: `${path}.${key}.provider`,
        message: several ? "several runtime providers are the default: keep one" : NO_PROVIDER_MESSAGE,
      },
    ],
    { subject: "gestalt config" },
  );
}
