/**
 * The built-in `local` runtime provider: plugins run as processes on this machine, through
 * the kernel (one workload per plugin, on the process backend). A session is a private
 * temp folder and is ready at once; the plugin learns its socket from
 * `GESTALT_PLUGIN_SOCKET` (`<session folder>/plugin.sock`, dialled at `unix://<that path>`),
 * gets only a safe base environment plus what was bound, and has its hostname egress
 * enforced by a local HTTP proxy. Stop is SIGTERM, then SIGKILL after 2 s.
 * @module
 */
import {
  type KernelRuntimeProviderOptions,
  kernelRuntimeProvider,
  type ProviderKernel,
} from "./kernel-provider.js";
import type { RuntimeProvider } from "./provider.js";

/** The variables of the host's environment that a locally hosted plugin inherits. */
export const SAFE_BASE_ENV_KEYS = [
  "PATH",
  "HOME",
  "TMPDIR",
  "LANG",
  "TZ",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
] as const;

/** The safe base environment: {@link SAFE_BASE_ENV_KEYS} taken from `env` (default `process.env`). */
export function safeBaseEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of SAFE_BASE_ENV_KEYS) {
    const value = env[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** Options of {@link localRuntimeProvider}. */
export interface LocalRuntimeProviderOptions
  extends Pick<
    KernelRuntimeProviderOptions,
    "profile" | "owner" | "sessionRoot" | "readyTimeoutMs" | "graceMs" | "logHost" | "logTailLines"
  > {
  /** A kernel on the process backend (`new ProcessBackend()`), with the plugin profile (`gestalt-plugin` by default). */
  kernel: ProviderKernel;
  /** Shown in messages. Default `local`. */
  name?: string;
  /** The base environment. Default: {@link safeBaseEnv} of this process. */
  baseEnv?: Record<string, string>;
}

/**
 * The built-in `local` provider: advertises can host, direct host-service access and
 * hostname egress.
 *
 * @example
 * ```ts
 * const kernel = createRuntimeKernel({ backend: new ProcessBackend(), profiles: { "gestalt-plugin": { runnable: {} } } });
 * const provider = localRuntimeProvider({ kernel });
 * ```
 */
export function localRuntimeProvider(options: LocalRuntimeProviderOptions): RuntimeProvider {
  const { kernel, baseEnv, name, ...rest } = options;
  return kernelRuntimeProvider(kernel, {
    ...rest,
    name: name ?? "local",
    support: { canHostPlugins: true, hostServiceAccess: "direct", egressMode: "hostname" },
    socket: { kind: "shared-folder" },
    baseEnv: baseEnv ?? safeBaseEnv(),
    egressProxy: { host: "127.0.0.1" },
  });
}
