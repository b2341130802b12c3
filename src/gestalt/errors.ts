/**
 * Errors of the hosted-plugin bootstrap. Each names the step that failed, in the words
 * gestaltd uses ("start plugin runtime session: ...", "dial hosted plugin: ...").
 * @module
 */
import { RuntimeKernelError, type RuntimeKernelErrorOptions } from "../errors.js";
import { quoteLogTail } from "./provider.js";

/** The steps of a hosted plugin's bootstrap, in order. */
export type BootstrapStep =
  | "select"
  | "support"
  | "plan"
  | "start-session"
  | "wait-ready"
  | "bind"
  | "start-plugin"
  | "dial"
  | "start-provider";

/** What a {@link HostedPluginError} tells about where it happened. */
export interface HostedPluginErrorContext {
  step: BootstrapStep;
  /** The plugin (or agent) name. */
  plugin: string;
  /** The runtime provider, once selected. */
  provider?: string;
  /** The session, once started (it has been stopped by the time the error is thrown). */
  sessionId?: string;
  /** The last lines of the plugin's log, when any were received. */
  logTail?: readonly string[];
}

/**
 * A hosted plugin could not be started. `code` is `START_FAILED`; `step` says where, and
 * any session that had started was stopped before this was thrown.
 */
export class HostedPluginError extends RuntimeKernelError {
  readonly step: BootstrapStep;
  readonly plugin: string;
  readonly provider?: string;
  readonly sessionId?: string;
  /** The last lines of the plugin's log (also quoted at the end of the message). */
  readonly logTail: readonly string[];

  constructor(context: HostedPluginErrorContext, message: string, options: RuntimeKernelErrorOptions = {}) {
    const tail = context.logTail ?? [];
    const where = context.provider
      ? `hosted plugin "${context.plugin}" on runtime provider "${context.provider}"`
      : `hosted plugin "${context.plugin}"`;
    super("START_FAILED", `${where}: ${message}${quoteLogTail(tail)}`, options);
    this.step = context.step;
    this.plugin = context.plugin;
    if (context.provider !== undefined) this.provider = context.provider;
    if (context.sessionId !== undefined) this.sessionId = context.sessionId;
    this.logTail = tail;
  }
}

/** Which of the plugin's needs the effective profile cannot meet. */
export type ProfileGap =
  | "can-host"
  | "host-service-access"
  | "hostname-egress"
  | "host-service"
  | "egress-proxy";

/**
 * The provider's effective profile cannot meet the plugin's needs. Thrown by the plan,
 * before any session starts: nothing was created.
 */
export class ProfileRefusedError extends HostedPluginError {
  readonly gap: ProfileGap;
  constructor(context: Omit<HostedPluginErrorContext, "step">, gap: ProfileGap, message: string) {
    super({ ...context, step: "plan" }, message);
    this.gap = gap;
  }
}
