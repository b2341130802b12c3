/**
 * Finding the kubeconfig: the option's, else where the client's `loadFromDefault` looks. The
 * client falls back to `http://localhost:8080` when it finds nothing, which then fails with a
 * message about TLS settings; this says instead that nothing was found, and where it looked.
 * @module
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { BackendUnavailableError } from "../../errors.js";
import { KubeConfig } from "./client.js";
import type { LoadedKubeConfig } from "./options.js";

/** The token a Pod's service account mounts: the client's sign that it runs in a cluster. */
export const SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/**
 * Why the default places hold no kubeconfig (`KUBECONFIG`, `~/.kube/config`, the in-cluster
 * service account, in the client's order), or undefined when one of them does.
 */
export function missingKubeConfig(
  env: NodeJS.ProcessEnv = process.env,
  exists: (path: string) => boolean = existsSync,
): string | undefined {
  // The client reads every file KUBECONFIG lists, and names a missing one itself.
  if (env.KUBECONFIG) return undefined;
  const home = env.HOME ? join(env.HOME, ".kube", "config") : undefined;
  if (home !== undefined && exists(home)) return undefined;
  if (exists(SERVICE_ACCOUNT_TOKEN)) return undefined;
  return [
    "no kubeconfig found: KUBECONFIG is not set, ",
    home === undefined ? "HOME is not set (so no ~/.kube/config), " : `${home} does not exist, `,
    `and there is no in-cluster service account (${SERVICE_ACCOUNT_TOKEN}); `,
    "set KUBECONFIG, or pass the kubeConfig option",
  ].join("");
}

/** The backend's kubeconfig: the one given, the file named, or the default one. */
export function loadKubeConfig(option: LoadedKubeConfig | string | undefined): KubeConfig {
  if (typeof option === "object") return option as KubeConfig;
  const missing = option === undefined ? missingKubeConfig() : undefined;
  if (missing !== undefined) throw new BackendUnavailableError(missing, { retryable: false });
  const kc = new KubeConfig();
  try {
    if (option === undefined) kc.loadFromDefault();
    else kc.loadFromFile(option);
  } catch (error) {
    const source = option ?? `KUBECONFIG=${process.env.KUBECONFIG ?? ""}`;
    throw new BackendUnavailableError(`cannot load the kubeconfig (${source}): ${(error as Error).message}`, {
      cause: error,
      retryable: false,
    });
  }
  return kc;
}
