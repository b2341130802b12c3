/**
 * The runtime providers of a plugin host: each loaded once, on first use, from what the
 * configuration says (a given provider, a driver, a source to launch or dial) and closed with
 * the host. It owns the providers it creates; it must not start sessions.
 * @module
 */
import { InvalidSpecError } from "../errors.js";
import type { Selected } from "./bootstrap.js";
import type { GestaltConfig, PluginConfig, PluginKind, RuntimeProviderConfig } from "./config.js";
import { HostedPluginError } from "./errors.js";
import { grpcRuntimeProvider } from "./grpc-provider.js";
import { handshakeRuntimeProvider, type ProviderIdentity } from "./lifecycle.js";
import { type LocalRuntimeProviderOptions, localRuntimeProvider } from "./local-provider.js";
import type { SessionLogBuffer } from "./log-buffer.js";
import type { DriverContext, PluginHostOptions } from "./plugin-host.js";
import type { RuntimeProvider } from "./provider.js";
import {
  type LaunchedRuntimeProvider,
  launchRuntimeProvider,
  readRuntimeManifest,
} from "./provider-process.js";
import { hostedRuntimeOf, selectRuntimeProvider } from "./provider-selection.js";

/** The built-in driver that runs plugins on the host's kernel. */
export const BUILTIN_LOCAL = "local";

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Loads and keeps the providers of one host. */
export class ProviderLoader {
  /** What each provider said in the lifecycle handshake, for those that speak it. */
  readonly identities = new Map<string, ProviderIdentity>();
  readonly #options: PluginHostOptions;
  readonly #config: GestaltConfig;
  readonly #logHost: SessionLogBuffer;
  readonly #callTimeout: number;
  readonly #loaded = new Map<string, Promise<RuntimeProvider>>();
  readonly #created = new Set<RuntimeProvider>();
  #local: RuntimeProvider | undefined;

  constructor(
    options: PluginHostOptions,
    config: GestaltConfig,
    logHost: SessionLogBuffer,
    callTimeout: number,
  ) {
    this.#options = options;
    this.#config = config;
    this.#logHost = logHost;
    this.#callTimeout = callTimeout;
  }

  /** The provider of plugins not hosted elsewhere: the `local` driver, made on first use. */
  local(): RuntimeProvider {
    this.#local ??= this.makeLocal();
    return this.#local;
  }

  /** A provider of the built-in `local` driver over the host's kernel. */
  makeLocal(entryConfig: Record<string, unknown> = {}): RuntimeProvider {
    if (!this.#options.kernel) {
      throw new InvalidSpecError(
        [
          {
            path: "kernel",
            message: "the local driver needs createPluginHost({ kernel }) (a kernel on the process backend)",
          },
        ],
        { subject: "plugin host options" },
      );
    }
    const fromConfig: Partial<LocalRuntimeProviderOptions> = {};
    if (typeof entryConfig.profile === "string") fromConfig.profile = entryConfig.profile;
    if (typeof entryConfig.sessionRoot === "string") fromConfig.sessionRoot = entryConfig.sessionRoot;
    if (typeof entryConfig.readyTimeoutMs === "number")
      fromConfig.readyTimeoutMs = entryConfig.readyTimeoutMs;
    if (typeof entryConfig.graceMs === "number") fromConfig.graceMs = entryConfig.graceMs;
    return localRuntimeProvider({
      ...this.#options.local,
      ...fromConfig,
      kernel: this.#options.kernel,
      logHost: this.#logHost,
    });
  }

  async #load(name: string): Promise<RuntimeProvider> {
    const given = this.#options.providers?.[name];
    if (given) return given;
    const entry = this.#config.runtime.providers[name];
    if (!entry) {
      throw new InvalidSpecError([{ path: `runtime.providers.${name}`, message: "is not configured" }], {
        subject: "gestalt config",
      });
    }
    const context: DriverContext = {
      name,
      entry,
      logHost: this.#logHost,
      ...(this.#options.kernel ? { kernel: this.#options.kernel } : {}),
    };
    let provider: RuntimeProvider;
    if (entry.driver !== undefined) {
      const driver = this.#options.drivers?.[entry.driver];
      if (driver) provider = await driver(context);
      else if (entry.driver === BUILTIN_LOCAL) provider = this.makeLocal(entry.config);
      else {
        const knownDrivers = [BUILTIN_LOCAL, ...Object.keys(this.#options.drivers ?? {})];
        throw new InvalidSpecError(
          [
            {
              path: `runtime.providers.${name}.driver`,
              message: `unknown driver "${entry.driver}" (known: ${knownDrivers.join(", ")})`,
            },
          ],
          { subject: "gestalt config" },
        );
      }
    } else {
      provider =
        (await this.#options.resolveSource?.(entry.source!, context)) ??
        (await this.#fromSource(name, entry));
    }
    this.#created.add(provider);
    return provider;
  }

  async #launch(name: string, entry: RuntimeProviderConfig, command: string, args: string[]) {
    const launched: LaunchedRuntimeProvider = await launchRuntimeProvider({
      name,
      command,
      args,
      env: entry.env,
      config: entry.config,
      logHost: this.#logHost,
      output: this.#options.providerOutput,
      startupTimeoutMs: this.#options.providerStartupTimeoutMs,
    });
    this.identities.set(name, launched.identity);
    return launched;
  }

  /** The built-in source forms: an executable to launch, a manifest of one, or an address to dial. */
  async #fromSource(name: string, entry: RuntimeProviderConfig): Promise<RuntimeProvider> {
    const source = entry.source!;
    const at = `runtime.providers.${name}.source`;
    if (typeof source === "object" && typeof source.command === "string") {
      return this.#launch(name, entry, source.command, (source.args as string[] | undefined) ?? []);
    }
    if (typeof source === "object" && typeof source.path === "string") {
      const { command, args } = await readRuntimeManifest(source.path, `${at}.path`);
      return this.#launch(name, entry, command, args);
    }
    const address = typeof source === "string" ? source : source.address;
    if (typeof address !== "string" || address === "") {
      throw new InvalidSpecError(
        [
          {
            path: at,
            message:
              "is not a provider address, { command } or { path }; pass createPluginHost({ resolveSource }) to load it",
          },
        ],
        { subject: "gestalt config" },
      );
    }
    const dialled = grpcRuntimeProvider(address);
    try {
      const identity = await handshakeRuntimeProvider(dialled.lifecycle, {
        name,
        config: entry.config,
        callTimeoutMs: this.#callTimeout,
      }).catch((error: unknown) => {
        // A provider of the specified revision predates ProviderLifecycle: it has no identity to check.
        if ((error as { unimplemented?: boolean }).unimplemented) return undefined;
        throw error;
      });
      if (identity) this.identities.set(name, identity);
    } catch (error) {
      await dialled.close();
      throw error;
    }
    return dialled;
  }

  /** The provider of `runtime.providers.<name>` (or a given one), loaded once; one that failed loads again next time. */
  get(name: string): Promise<RuntimeProvider> {
    let p = this.#loaded.get(name);
    if (!p) {
      p = this.#load(name);
      this.#loaded.set(name, p);
      // A provider that failed to load may load later (the admin view retries).
      p.catch(() => this.#loaded.delete(name));
    }
    return p;
  }

  /** The provider of a plugin (step select): its own, the default hosted one, or the built-in local driver. */
  async select(kind: PluginKind, name: string, entry: PluginConfig): Promise<Selected> {
    if (!hostedRuntimeOf(entry)) {
      try {
        return { providerName: BUILTIN_LOCAL, provider: this.local() };
      } catch (error) {
        throw new HostedPluginError(
          { step: "select", plugin: name, provider: BUILTIN_LOCAL },
          `run locally: ${messageOf(error)}`,
          { cause: error },
        );
      }
    }
    let providerName: string;
    try {
      providerName = selectRuntimeProvider(this.#config, kind, name).provider;
    } catch (error) {
      throw new HostedPluginError(
        { step: "select", plugin: name },
        `select runtime provider: ${messageOf(error)}`,
        {
          cause: error,
        },
      );
    }
    try {
      return { providerName, provider: await this.get(providerName) };
    } catch (error) {
      throw new HostedPluginError(
        { step: "select", plugin: name, provider: providerName },
        `load runtime provider: ${messageOf(error)}`,
        { cause: error },
      );
    }
  }

  /** Closes every provider it created (errors ignored: the host is going away). */
  async close(): Promise<void> {
    for (const p of this.#created) await p.close?.().catch(() => {});
    if (this.#local) await this.#local.close?.().catch(() => {});
  }
}
