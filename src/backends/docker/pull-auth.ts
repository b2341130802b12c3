/**
 * Registry credentials for image pulls, read from a Docker config JSON document (the
 * `imagePullAuth.dockerConfigJson` of a profile, the format of `~/.docker/config.json` and
 * of Kubernetes' `.dockerconfigjson` Secrets). The credentials go to the engine in the
 * `X-Registry-Auth` header of the pull only: never onto the container, never into an error.
 * @module
 */

/** The credentials the engine's pull API takes (its `AuthConfig`). */
export interface RegistryAuth {
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
  serveraddress: string;
}

const DOCKER_HUB = "docker.io";
const DOCKER_HUB_ALIASES = new Set([
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
  "registry.hub.docker.com",
]);

/**
 * The registry host an image reference names: its first path component when that looks like a
 * host (has a `.` or a `:`, or is `localhost`), else Docker Hub.
 */
export function registryOf(image: string): string {
  const slash = image.indexOf("/");
  if (slash < 0) return DOCKER_HUB;
  const first = image.slice(0, slash);
  if (first === "localhost" || first.includes(".") || first.includes(":")) {
    return DOCKER_HUB_ALIASES.has(first) ? DOCKER_HUB : first;
  }
  return DOCKER_HUB;
}

/** A config key (`https://index.docker.io/v1/`, `registry.example.com`, ...) as a bare host. */
function hostOfKey(key: string): string {
  const host = key
    .replace(/^[a-z]+:\/\//i, "")
    .replace(/\/.*$/, "")
    .toLowerCase();
  return DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB : host;
}

interface ConfigEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

/**
 * The credentials for pulling `image`, or `undefined` when the document has none for its
 * registry (the pull then goes anonymous). Throws a plain `Error` without any secret in its
 * message when the matching entry is malformed.
 */
export function authForImage(image: string, dockerConfigJson: string): RegistryAuth | undefined {
  const registry = registryOf(image);
  let doc: { auths?: Record<string, ConfigEntry> };
  try {
    doc = JSON.parse(dockerConfigJson) as typeof doc;
  } catch {
    throw new Error("imagePullAuth.dockerConfigJson is not valid JSON");
  }
  const entry = Object.entries(doc.auths ?? {}).find(
    ([key]) => hostOfKey(key) === registry.toLowerCase(),
  )?.[1];
  if (!entry || typeof entry !== "object") return undefined;
  const serveraddress = registry === DOCKER_HUB ? "https://index.docker.io/v1/" : registry;
  if (entry.identitytoken) return { identitytoken: entry.identitytoken, serveraddress };
  if (entry.registrytoken) return { registrytoken: entry.registrytoken, serveraddress };
  let { username, password } = entry;
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0)
      throw new Error(`imagePullAuth: the "auth" entry for ${registry} is not base64 of user:password`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  if (username === undefined || password === undefined) {
    throw new Error(
      `imagePullAuth: the entry for ${registry} has neither "auth" nor "username" and "password"`,
    );
  }
  return { username, password, serveraddress };
}
