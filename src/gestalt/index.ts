/**
 * `runtime-kernel/gestalt`: runtime-provider sessions, support-profile negotiation and
 * hosted plugins dialled back over gRPC, on top of the kernel's public API.
 *
 * @example
 * ```ts
 * import { loadGestaltConfig, createPluginHost } from "runtime-kernel/gestalt";
 * const config = loadGestaltConfig(yamlText);
 * const host = createPluginHost({ config, kernel, hostCapabilities: { publicBaseUrl, encryptionKey } });
 * const plugin = await host.startPlugin("support");
 * plugin.channel; // a Ready @grpc/grpc-js Channel
 * await host.close();
 * ```
 * @module
 */

export type { AdminHandler, AdminHandlerOptions } from "./admin.js";
export { createAdminHandler } from "./admin.js";
export type {
  AgentConfig,
  EgressConfig,
  ExecutionConfig,
  GestaltConfig,
  GestaltConfigError,
  HostedRuntimeConfig,
  PluginConfig,
  PluginKind,
  RuntimeProviderConfig,
} from "./config.js";
export { loadGestaltConfig } from "./config.js";
export type { DialedPlugin, DialOptions, DialTarget, DialTlsOptions } from "./dial.js";
export { channelSettings, DialTargetError, dialHostedPlugin, parseDialTarget, waitForReady } from "./dial.js";
export type { EgressDecision, EgressPolicy, EgressProxy, EgressProxyOptions } from "./egress.js";
export { createEgressProxy, isHostAllowed } from "./egress.js";
export type { BootstrapStep, HostedPluginErrorContext, ProfileGap } from "./errors.js";
export { HostedPluginError, ProfileRefusedError } from "./errors.js";
export type { GrpcClientOptions, GrpcRuntimeLogHostOptions, GrpcRuntimeProvider } from "./grpc-provider.js";
export {
  grpcRuntimeLogHost,
  grpcRuntimeProvider,
  RELAY_TOKEN_HEADER,
  resolveGrpcAddress,
} from "./grpc-provider.js";
export type { IntegrationMetadata, StartIntegrationOptions } from "./integration.js";
export { startIntegrationProvider } from "./integration.js";
export type {
  KernelRuntimeProvider,
  KernelRuntimeProviderOptions,
  PluginSocketMode,
  ProviderKernel,
} from "./kernel-provider.js";
export { GESTALT_PLUGIN_PROFILE, kernelRuntimeProvider, sessionStateOf } from "./kernel-provider.js";
export type {
  ConfigureProviderRequest,
  HandshakeOptions,
  ProviderIdentity,
  ProviderKind,
  ProviderLifecycle,
  ProviderLifecycleHooks,
} from "./lifecycle.js";
export { GESTALT_PROTOCOL_VERSION, handshakeRuntimeProvider, providerKindName } from "./lifecycle.js";
export type { LocalRuntimeProviderOptions } from "./local-provider.js";
export { localRuntimeProvider, SAFE_BASE_ENV_KEYS, safeBaseEnv } from "./local-provider.js";
export { SessionLogBuffer } from "./log-buffer.js";
export type {
  HostedPluginPlan,
  HostServiceDefinition,
  PlanInput,
  PlannedBinding,
  PluginNeeds,
} from "./plan.js";
export { planHostedPlugin, pluginEntry, pluginNeeds } from "./plan.js";
export type {
  DriverContext,
  HostedPlugin,
  PluginHost,
  PluginHostOptions,
  ProviderView,
  RuntimeProviderDriver,
  SessionView,
  StartHostedOptions,
} from "./plugin-host.js";
export { createPluginHost } from "./plugin-host.js";
export type { EgressDelivery, HostCapabilities, ProfilePair, SupportProfile } from "./profile.js";
export { advertisedProfile, effectiveProfile, egressDelivery, hostCanRelay, profilePair } from "./profile.js";
export type {
  AgentWorkspace,
  BindHostServiceRequest,
  EgressMode,
  HostedPluginInfo,
  HostServiceAccess,
  HostServiceBinding,
  PreparedWorkspace,
  PrepareWorkspaceRequest,
  ProviderCallOptions,
  RemoveWorkspaceRequest,
  RuntimeLogEntry,
  RuntimeLogHost,
  RuntimeLogStream,
  RuntimeProvider,
  RuntimeSession,
  RuntimeSessionLifecycle,
  RuntimeSessionState,
  RuntimeSupport,
  StartPluginRequest,
  StartSessionRequest,
  WorkspaceCheckout,
} from "./provider.js";
export { RuntimeProviderError } from "./provider.js";
export type { LaunchedRuntimeProvider, LaunchRuntimeProviderOptions } from "./provider-process.js";
export { launchRuntimeProvider, PROVIDER_ENV, readRuntimeManifest } from "./provider-process.js";
export type { ProviderSelectionSource } from "./provider-selection.js";
export {
  defaultRuntimeProvider,
  entryPath,
  hostedRuntimeOf,
  selectRuntimeProvider,
} from "./provider-selection.js";
export type { ServedEndpoint, ServeOptions, ServeRuntimeProviderOptions } from "./serve-provider.js";
export { serveRuntimeLogHost, serveRuntimeProvider } from "./serve-provider.js";
