/**
 * The runtime-provider port: the TypeScript face of `gestalt.provider.v1.PluginRuntimeProvider`.
 *
 * A runtime provider is a control-plane backend. It creates a plugin runtime session,
 * starts one plugin process there, and returns a host-reachable dial target that the host
 * dials back over gRPC. Every method mirrors one RPC of the service, with the same fields
 * in camelCase and the enums as string literals, so a provider written in TypeScript and
 * one reached over gRPC are interchangeable (see `grpcRuntimeProvider` and
 * `serveRuntimeProvider`).
 *
 * Two protocol revisions meet here: the current upstream one (`prepareWorkspace`,
 * `removeWorkspace`, `supportsPrepareWorkspace`) and the specified one (`bindHostService`,
 * `hostServiceAccess`). A provider implements what its revision has; the host uses what
 * the provider has.
 * @module
 */
import {
  RuntimeKernelError,
  type RuntimeKernelErrorCode,
  type RuntimeKernelErrorOptions,
} from "../errors.js";

/**
 * How a session reaches the host's services. `relay` is never advertised by a provider:
 * it is the host's own upgrade of `none` (see `effectiveProfile`).
 */
export type HostServiceAccess = "unspecified" | "none" | "relay" | "direct";

/** Which outbound-traffic policy a runtime can enforce. */
export type EgressMode = "unspecified" | "none" | "cidr" | "hostname";

/** Where a log line came from: the plugin's stdout or stderr, or the runtime itself. */
export type RuntimeLogStream = "unspecified" | "stdout" | "stderr" | "runtime";

/** What a provider says it can do (`GetSupport`). */
export interface RuntimeSupport {
  canHostPlugins: boolean;
  /**
   * Specified revision only; a current provider leaves it `unspecified` and the host decides
   * from its own relay configuration. Never `relay` on the wire.
   */
  hostServiceAccess: Exclude<HostServiceAccess, "relay">;
  egressMode: EgressMode;
  /**
   * `prepareWorkspace` creates the requested git checkouts inside the session that runs the
   * plugin, and `removeWorkspace` removes them. Current revision; absent means false.
   */
  supportsPrepareWorkspace?: boolean;
}

/** The session states a provider reports. Other strings may appear from other providers. */
export type RuntimeSessionState = "pending" | "ready" | "running" | "stopped" | "failed";

/** When a session started and when its provider wants it gone. */
export interface RuntimeSessionLifecycle {
  startedAt?: Date;
  recommendedDrainAt?: Date;
  expiresAt?: Date;
}

/** One plugin runtime session. */
export interface RuntimeSession {
  id: string;
  /** `pending`, `ready`, `running`, `stopped` or `failed` (kept a string: providers may say more). */
  state: RuntimeSessionState | (string & {});
  metadata: Record<string, string>;
  lifecycle?: RuntimeSessionLifecycle;
  /** A short machine-readable reason for the state (for example `failed`'s cause). */
  stateReason?: string;
  /** A human-readable message about the state. */
  stateMessage?: string;
}

/** `StartSession`'s request. */
export interface StartSessionRequest {
  pluginName: string;
  /** A provider-specific template (for example a sandbox template or a kernel profile). */
  template?: string;
  /** The image to run the plugin from, for providers that run images. */
  image?: string;
  /** Free-form labels; the host adds `provider_kind` and `provider_name`. */
  metadata?: Record<string, string>;
  /** Registry credentials for `image`. A secret: never logged. */
  imagePullAuth?: { dockerConfigJson: string };
}

/** `BindHostService`'s request: make a host service reachable in the session through `envVar`. */
export interface BindHostServiceRequest {
  sessionId: string;
  /** The environment variable through which the plugin learns the service's address. */
  envVar: string;
  /** Where the plugin reaches the service (a relay endpoint, or a direct address). */
  relay?: { dialTarget: string };
}

/** A host service bound into a session. */
export interface HostServiceBinding {
  id: string;
  sessionId: string;
  envVar: string;
  relay?: { dialTarget: string };
}

/** `StartPlugin`'s request. */
export interface StartPluginRequest {
  sessionId: string;
  pluginName: string;
  /** The program to run (in the session's filesystem). */
  command: string;
  args?: string[];
  /** Added to the runtime's base environment and the bound host services. */
  env?: Record<string, string>;
  /** Hostnames the plugin may reach, exact or `*.suffix`; empty means "use defaultAction". */
  allowedHosts?: string[];
  /** `allow` or `deny`: the fate of a host when `allowedHosts` is empty. */
  defaultAction?: "allow" | "deny" | "";
  /** A binary on the host that a remote runtime may copy into the session. */
  hostBinary?: string;
}

/** One git checkout of an agent workspace. */
export interface WorkspaceCheckout {
  /** The repository (`https://`, `ssh://`, `git://`, `file://` or `user@host:path`). */
  url: string;
  /** A branch, tag or commit; empty or absent: the repository's default branch. */
  ref?: string;
  /** Where the checkout goes, relative to the workspace root. */
  path: string;
}

/** What an agent session's workspace holds (`AgentWorkspace`). */
export interface AgentWorkspace {
  /** Git checkouts; none: a plain folder. */
  checkouts: WorkspaceCheckout[];
  /** The folder to start in, relative to the workspace root (inside one checkout when there are any). */
  cwd: string;
}

/** `PrepareWorkspace`'s request: a workspace for one agent session, inside a plugin runtime session. */
export interface PrepareWorkspaceRequest {
  sessionId: string;
  agentSessionId: string;
  workspace: AgentWorkspace;
}

/** Where a prepared workspace is: absolute paths as the plugin in the session sees them. */
export interface PreparedWorkspace {
  root: string;
  cwd: string;
}

/** `RemoveWorkspace`'s request. */
export interface RemoveWorkspaceRequest {
  sessionId: string;
  agentSessionId: string;
}

/** A plugin started in a session, and where to dial it. */
export interface HostedPluginInfo {
  id: string;
  sessionId: string;
  pluginName: string;
  /** `unix://PATH`, `tcp://HOST:PORT` or `tls://HOST:PORT`; no scheme means a unix path. */
  dialTarget: string;
}

/** Options every provider call accepts. */
export interface ProviderCallOptions {
  /** Aborts the call (a gRPC provider cancels the RPC). */
  signal?: AbortSignal;
}

/**
 * A runtime provider: the RPCs of `gestalt.provider.v1.PluginRuntimeProvider`, in both
 * revisions (the optional methods are those one revision lacks).
 *
 * @example
 * ```ts
 * const provider = localRuntimeProvider({ kernel });
 * const session = await provider.startSession({ pluginName: "echo" });
 * const plugin = await provider.startPlugin({ sessionId: session.id, pluginName: "echo", command: "./echo" });
 * // dial plugin.dialTarget, then:
 * await provider.stopSession({ sessionId: session.id });
 * ```
 */
export interface RuntimeProvider {
  /** What the provider can do. */
  getSupport(options?: ProviderCallOptions): Promise<RuntimeSupport>;
  /** Creates a session for one plugin. It may be `pending` at first: poll `getSession`. */
  startSession(request: StartSessionRequest, options?: ProviderCallOptions): Promise<RuntimeSession>;
  /** The session's current state. Rejects with `WORKLOAD_NOT_FOUND` for an unknown id. */
  getSession(request: { sessionId: string }, options?: ProviderCallOptions): Promise<RuntimeSession>;
  /**
   * Every session the provider holds. Optional: a provider without it (or whose gRPC
   * server answers Unimplemented) is asked `getSession` per known session instead.
   */
  listSessions?(options?: ProviderCallOptions): Promise<RuntimeSession[]>;
  /** Stops the session and everything in it. Idempotent: stopping a stopped or unknown session succeeds. */
  stopSession(request: { sessionId: string }, options?: ProviderCallOptions): Promise<void>;
  /**
   * Makes a host service reachable in the session, through an environment variable of the
   * plugin. Specified revision only: the host also passes every binding in `startPlugin`'s
   * env, which is all a current provider gets.
   */
  bindHostService?(
    request: BindHostServiceRequest,
    options?: ProviderCallOptions,
  ): Promise<HostServiceBinding>;
  /**
   * Prepares an agent session's workspace inside the session (git checkouts, or a plain
   * folder). Current revision; called only when `getSupport` says `supportsPrepareWorkspace`.
   * Idempotent for the same workspace; refused for a different one under the same agent session.
   */
  prepareWorkspace?(
    request: PrepareWorkspaceRequest,
    options?: ProviderCallOptions,
  ): Promise<PreparedWorkspace>;
  /** Removes an agent session's workspace. Current revision; removing an absent one succeeds. */
  removeWorkspace?(request: RemoveWorkspaceRequest, options?: ProviderCallOptions): Promise<void>;
  /** Starts the session's plugin and returns its dial target once it can be dialled. */
  startPlugin(request: StartPluginRequest, options?: ProviderCallOptions): Promise<HostedPluginInfo>;
  /** Releases what the provider holds (connections, servers). Does not stop sessions. */
  close?(): Promise<void>;
}

/** One line of a session's output, as a provider appends it to the host. */
export interface RuntimeLogEntry {
  stream: RuntimeLogStream;
  message: string;
  observedAt?: Date;
  /** The provider's sequence number of this line within the session. */
  sourceSeq: number;
}

/**
 * The host side of `gestalt.provider.v1.PluginRuntimeLogHost`: a provider appends the
 * output of its sessions' plugins here, so the host can show it (and quote it in errors).
 */
export interface RuntimeLogHost {
  appendLogs(request: { sessionId: string; logs: RuntimeLogEntry[] }): Promise<{ lastSeq: number }>;
}

/**
 * A provider call failed. `code` follows the gRPC status when the provider is remote
 * (`WORKLOAD_NOT_FOUND` for NOT_FOUND, `BACKEND_UNAVAILABLE` for UNAVAILABLE, ...);
 * `unimplemented` is set when the provider does not implement the method.
 */
export class RuntimeProviderError extends RuntimeKernelError {
  /** The method that failed, for example `StartSession`. */
  readonly method: string;
  /** The provider does not implement `method`. */
  readonly unimplemented: boolean;
  /** The gRPC status code, when the provider is remote. */
  readonly grpcCode?: number;
  /** What went wrong, without the log tail that {@link message} quotes after it. */
  readonly reason: string;
  /** The last lines of the plugin's log, when the provider sent them (quoted at the end of {@link message}). */
  readonly logTail: readonly string[];

  constructor(
    code: RuntimeKernelErrorCode,
    method: string,
    message: string,
    options: RuntimeKernelErrorOptions & {
      unimplemented?: boolean;
      grpcCode?: number;
      logTail?: readonly string[];
    } = {},
  ) {
    const logTail = options.logTail ?? [];
    super(code, `${message}${quoteLogTail(logTail)}`, options);
    this.method = method;
    this.unimplemented = options.unimplemented ?? false;
    if (options.grpcCode !== undefined) this.grpcCode = options.grpcCode;
    this.reason = message;
    this.logTail = logTail;
  }
}

/** How an error quotes the plugin's last lines after its message, as gestaltd shows them. */
export function quoteLogTail(tail: readonly string[]): string {
  return tail.length ? `\n--- last ${tail.length} line(s) of the plugin's log ---\n${tail.join("\n")}` : "";
}

/**
 * Splits a message that ends in a quoted log tail (see {@link quoteLogTail}) into its reason
 * and the lines: for an error that crossed the wire, where text is all there is.
 */
export function splitLogTail(message: string): { reason: string; logTail: string[] } {
  const at = message.lastIndexOf("\n--- last ");
  const header =
    at < 0 ? null : /^\n--- last (\d+) line\(s\) of the plugin's log ---\n/.exec(message.slice(at));
  if (header) {
    const lines = message.slice(at + header[0].length).split("\n");
    if (lines.length === Number(header[1])) return { reason: message.slice(0, at), logTail: lines };
  }
  return { reason: message, logTail: [] };
}

/** A session id the provider does not know. */
export function sessionNotFound(method: string, sessionId: string): RuntimeProviderError {
  return new RuntimeProviderError("WORKLOAD_NOT_FOUND", method, `no plugin runtime session "${sessionId}"`);
}

/** A method the provider does not implement (served as gRPC UNIMPLEMENTED). */
export function unimplemented(method: string): RuntimeProviderError {
  return new RuntimeProviderError("BACKEND_ERROR", method, `${method} is not implemented by this provider`, {
    unimplemented: true,
  });
}
