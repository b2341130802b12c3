/**
 * The bootstrap of one hosted plugin, as the named steps gestaltd takes: support → plan →
 * start-session → wait-ready → bind → start-plugin → dial → start-provider (the host selects
 * the provider first). It owns the session it starts until it hands the plugin over, and
 * stops it on any failure; it must not load providers or keep plugins (the host does).
 * @module
 */
import type { Channel } from "@grpc/grpc-js";
import { InvalidSpecError } from "../errors.js";
import type { GestaltConfig, PluginConfig, PluginKind } from "./config.js";
import { type DialTlsOptions, dialHostedPlugin } from "./dial.js";
import { type BootstrapStep, HostedPluginError } from "./errors.js";
import { type IntegrationMetadata, startIntegrationProvider } from "./integration.js";
import type { SessionLogBuffer } from "./log-buffer.js";
import { type HostedPluginPlan, type HostServiceDefinition, planHostedPlugin, pluginEntry } from "./plan.js";
import type { HostCapabilities } from "./profile.js";
import { type RuntimeProvider, RuntimeProviderError, type RuntimeSession } from "./provider.js";
import { PROVIDER_ENV } from "./provider-process.js";
import { entryPath, hostedRuntimeOf } from "./provider-selection.js";
import { waitForSession, watchSessionEnd, withTimeout } from "./wait.js";

/** What a bootstrap needs of its host. */
export interface BootstrapHost {
  config: GestaltConfig;
  hostCapabilities: HostCapabilities;
  hostServices?: Record<string, HostServiceDefinition> | undefined;
  logHost: SessionLogBuffer;
  /** How many lines of the plugin's log a start error quotes. */
  tailLines: number;
  timeouts: {
    call: number;
    sessionReady?: number | undefined;
    pollInterval?: number | undefined;
    startPlugin?: number | undefined;
    dial?: number | undefined;
  };
  tls?: DialTlsOptions | undefined;
  /** The sessions this host started on a provider, by id (the plugin's name as value). */
  sessionsOf(providerName: string): Map<string, string>;
  /** Stops a session, bounded. */
  stopSession(provider: RuntimeProvider, sessionId: string): Promise<void>;
}

/** The provider the host selected for a plugin. */
export interface Selected {
  providerName: string;
  provider: RuntimeProvider;
}

/** A plugin started and dialled: what the host keeps of it. */
export interface Bootstrapped extends Selected {
  kind: PluginKind;
  name: string;
  sessionId: string;
  pluginId: string;
  dialTarget: string;
  channel: Channel;
  plan: HostedPluginPlan;
  metadata?: IntegrationMetadata;
}

/** One bootstrap under way: the plugin, its provider, and its session once started. */
interface Attempt extends Selected {
  host: BootstrapHost;
  kind: PluginKind;
  name: string;
  entry: PluginConfig;
  env?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
}

/** The entry of `plugins.<name>` (or `providers.agent.<name>`); refused naming the field when missing. */
export function configuredEntry(config: GestaltConfig, kind: PluginKind, name: string): PluginConfig {
  const entry = pluginEntry(config, kind, name);
  if (entry) return entry;
  const all = Object.keys(kind === "plugin" ? config.plugins : config.providers.agent);
  throw new InvalidSpecError(
    [{ path: entryPath(kind, name), message: `is not configured (configured: ${all.join(", ") || "none"})` }],
    { subject: "gestalt config" },
  );
}

/** Runs the steps after selection, in order; any failure after start-session stops the session first. */
export async function bootstrapHostedPlugin(
  host: BootstrapHost,
  kind: PluginKind,
  name: string,
  entry: PluginConfig,
  selected: Selected,
  start: { env?: Record<string, string> | undefined; signal?: AbortSignal | undefined },
): Promise<Bootstrapped> {
  const attempt: Attempt = { host, kind, name, entry, ...selected, env: start.env, signal: start.signal };
  const plan = await planStep(attempt);
  const command = entry.command ?? entry.hostBinary;
  if (!command) {
    throw failure(
      attempt,
      "plan",
      `${entryPath(kind, name)}.command: is required to start the plugin`,
      undefined,
    );
  }
  const session = await startSessionStep(attempt);
  const sessionId = session.id;
  host.sessionsOf(attempt.providerName).set(sessionId, name);
  await waitReadyStep(attempt, session);
  await bindStep(attempt, sessionId, plan);
  const started = await startPluginStep(attempt, sessionId, plan, command);
  const channel = await dialStep(attempt, sessionId, started.dialTarget);
  const metadata = kind === "plugin" ? await startProviderStep(attempt, sessionId, channel) : undefined;
  return {
    kind,
    name,
    providerName: attempt.providerName,
    provider: attempt.provider,
    sessionId,
    pluginId: started.id,
    dialTarget: started.dialTarget,
    channel,
    plan,
    ...(metadata ? { metadata } : {}),
  };
}

/** The error of a step: it names the step, the plugin and its provider. */
function failure(
  a: Attempt,
  step: BootstrapStep,
  message: string,
  cause: unknown,
  extra: { sessionId?: string; logTail?: readonly string[] } = {},
): HostedPluginError {
  return new HostedPluginError({ step, plugin: a.name, provider: a.providerName, ...extra }, message, {
    cause,
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A step after start-session failed: stops the session, then throws the step's error with
 * the plugin's log tail: the one the provider's error carries, else what the host received.
 */
async function abandon(
  a: Attempt,
  sessionId: string,
  step: BootstrapStep,
  message: string,
  cause: unknown,
): Promise<never> {
  const carried = cause instanceof RuntimeProviderError && cause.logTail.length > 0 ? cause : undefined;
  const causeText = carried ? carried.reason : messageOf(cause);
  const tail = carried
    ? carried.logTail
    : a.host.logHost.tail(sessionId, a.host.tailLines).map((e) => e.message);
  let stopNote = "";
  try {
    await a.host.stopSession(a.provider, sessionId);
  } catch (error) {
    stopNote = ` (stopping session "${sessionId}" also failed: ${messageOf(error)})`;
  }
  a.host.sessionsOf(a.providerName).delete(sessionId);
  throw failure(a, step, `${message}: ${causeText}${stopNote}`, cause, { sessionId, logTail: tail });
}

/** support, then plan: refusals happen here, before any session exists. */
async function planStep(a: Attempt): Promise<HostedPluginPlan> {
  let support: Awaited<ReturnType<RuntimeProvider["getSupport"]>>;
  try {
    support = await a.provider.getSupport({ signal: withTimeout(a.host.timeouts.call, a.signal) });
  } catch (error) {
    throw failure(a, "support", `get runtime provider support: ${messageOf(error)}`, error);
  }
  return planHostedPlugin({
    config: a.host.config,
    kind: a.kind,
    plugin: a.name,
    provider: a.providerName,
    support,
    host: a.host.hostCapabilities,
    ...(a.host.hostServices ? { hostServices: a.host.hostServices } : {}),
  });
}

async function startSessionStep(a: Attempt): Promise<RuntimeSession> {
  const runtime = hostedRuntimeOf(a.entry)?.runtime;
  try {
    return await a.provider.startSession(
      {
        pluginName: a.name,
        ...(runtime?.template ? { template: runtime.template } : {}),
        ...(runtime?.image ? { image: runtime.image } : {}),
        // As gestaltd: the kind of the placed provider (plugin or agent) and its name.
        metadata: { ...runtime?.metadata, provider_kind: a.kind, provider_name: a.name },
        ...(runtime?.imagePullAuth ? { imagePullAuth: runtime.imagePullAuth } : {}),
      },
      { signal: withTimeout(a.host.timeouts.call, a.signal) },
    );
  } catch (error) {
    throw failure(a, "start-session", `start plugin runtime session: ${messageOf(error)}`, error);
  }
}

async function waitReadyStep(a: Attempt, session: RuntimeSession): Promise<void> {
  const sessionId = session.id;
  const { call, sessionReady, pollInterval } = a.host.timeouts;
  try {
    await waitForSession((signal) => a.provider.getSession({ sessionId }, { signal }), session, {
      timeoutMs: sessionReady ?? 30_000,
      intervalMs: pollInterval ?? 25,
      callTimeoutMs: call,
      signal: a.signal,
    });
  } catch (error) {
    await abandon(
      a,
      sessionId,
      "wait-ready",
      `wait for plugin runtime session ${JSON.stringify(sessionId)} ready`,
      error,
    );
  }
}

/**
 * A provider of the specified revision binds host services; a current one has no
 * BindHostService (it answers UNIMPLEMENTED) and gets the bindings in StartPlugin's env.
 */
async function bindStep(a: Attempt, sessionId: string, plan: HostedPluginPlan): Promise<void> {
  for (const binding of a.provider.bindHostService ? plan.bindings : []) {
    try {
      await a.provider.bindHostService!(
        { sessionId, envVar: binding.envVar, relay: { dialTarget: binding.dialTarget } },
        { signal: withTimeout(a.host.timeouts.call, a.signal) },
      );
    } catch (error) {
      if ((error as { unimplemented?: boolean }).unimplemented && binding === plan.bindings[0]) break;
      await abandon(a, sessionId, "bind", `bind host service ${JSON.stringify(binding.service)}`, error);
    }
  }
}

async function startPluginStep(
  a: Attempt,
  sessionId: string,
  plan: HostedPluginPlan,
  command: string,
): Promise<{ id: string; dialTarget: string }> {
  const env: Record<string, string> = {
    ...a.entry.env,
    ...a.env,
    ...Object.fromEntries(plan.bindings.map((b) => [b.envVar, b.dialTarget])),
    ...plan.egressEnv,
    [PROVIDER_ENV.sessionId]: sessionId,
  };
  try {
    return await a.provider.startPlugin(
      {
        sessionId,
        pluginName: a.name,
        command,
        args: a.entry.args,
        env,
        ...(plan.egress
          ? { allowedHosts: plan.egress.allowedHosts, defaultAction: plan.egress.defaultAction }
          : {}),
        ...(a.entry.hostBinary ? { hostBinary: a.entry.hostBinary } : {}),
      },
      { signal: withTimeout(a.host.timeouts.startPlugin ?? 60_000, a.signal) },
    );
  } catch (error) {
    return abandon(a, sessionId, "start-plugin", "start hosted plugin", error);
  }
}

/** Dials the plugin while watching its session: a plugin that dies now fails the dial at once. */
async function dialStep(a: Attempt, sessionId: string, dialTarget: string): Promise<Channel> {
  const watch = new AbortController();
  let died: Error | undefined;
  try {
    const signal = a.signal ? AbortSignal.any([a.signal, watch.signal]) : watch.signal;
    const watcher = watchSessionEnd(
      (s) => a.provider.getSession({ sessionId }, { signal: s }),
      watch.signal,
      (why) => {
        died = why;
        watch.abort(why);
      },
    );
    try {
      const { channel } = await dialHostedPlugin(dialTarget, {
        timeoutMs: a.host.timeouts.dial ?? 30_000,
        signal,
        ...(a.host.tls ? { tls: a.host.tls } : {}),
      });
      return channel;
    } finally {
      if (!watch.signal.aborted) watch.abort();
      await watcher;
    }
  } catch (error) {
    return abandon(a, sessionId, "dial", "dial hosted plugin", died ?? error);
  }
}

/** A plugin (not an agent) is an integration provider to gestaltd: tell it to start. */
async function startProviderStep(
  a: Attempt,
  sessionId: string,
  channel: Channel,
): Promise<IntegrationMetadata | undefined> {
  try {
    return await startIntegrationProvider(channel, {
      name: a.name,
      config: a.entry.config,
      timeoutMs: a.host.timeouts.call,
      ...(a.signal ? { signal: a.signal } : {}),
    });
  } catch (error) {
    channel.close();
    return abandon(a, sessionId, "start-provider", "start integration provider", error);
  }
}
