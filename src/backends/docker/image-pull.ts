/**
 * Pulling a workload's image through the engine, with the profile's registry credentials in
 * the pull's auth header only. It owns only the pull; creating and starting are the backend's.
 * @module
 */
import type { Readable } from "node:stream";
import type Dockerode from "dockerode";
import { StartAbortedError, StartFailedError } from "../../errors.js";
import { engineMessage, isConnectionError, sanitize, unavailable } from "./engine-errors.js";
import type { ResolvedDockerProfile } from "./options.js";
import { authForImage, type RegistryAuth } from "./pull-auth.js";

/** Pulls `image` for `workloadId`'s start; rejects `START_FAILED`, or `START_ABORTED` once `signal` aborts. */
export async function pullImage(
  docker: Dockerode,
  image: string,
  profile: ResolvedDockerProfile,
  workloadId: string,
  signal: AbortSignal,
): Promise<void> {
  let auth: RegistryAuth | undefined;
  if (profile.imagePullAuth) {
    try {
      auth = authForImage(image, profile.imagePullAuth.dockerConfigJson);
    } catch (error) {
      throw new StartFailedError(workloadId, (error as Error).message);
    }
  }
  const { repository, tag } = splitImage(image);
  let stream: Readable;
  try {
    // Credentials travel in the X-Registry-Auth header only (never in the query string).
    const opts = { fromImage: repository, tag };
    stream = (await (auth
      ? docker.createImage(auth as Dockerode.AuthConfig, opts)
      : docker.createImage(opts))) as unknown as Readable;
  } catch (error) {
    if (isConnectionError(error)) throw unavailable(`pulling ${image}`, error);
    throw pullFailed(workloadId, image, error);
  }
  const abort = () => stream.destroy(new Error("pull aborted"));
  signal.addEventListener("abort", abort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (error: Error | null, output: Array<{ error?: string }>) => {
        if (error) return reject(error);
        const failed = output?.find((o) => o.error);
        if (failed) return reject(new Error(failed.error));
        resolve();
      });
    });
  } catch (error) {
    if (signal.aborted) throw new StartAbortedError(workloadId, { cause: signal.reason });
    throw pullFailed(workloadId, image, error);
  } finally {
    signal.removeEventListener("abort", abort);
  }
}

function pullFailed(workloadId: string, image: string, error: unknown): StartFailedError {
  return new StartFailedError(workloadId, `Pulling image ${image} failed: ${engineMessage(error)}`, {
    cause: sanitize(error),
  });
}

/** `repo[:tag][@digest]` into the pull API's `fromImage` and `tag`. */
export function splitImage(image: string): { repository: string; tag: string } {
  const at = image.indexOf("@");
  if (at >= 0) return { repository: image.slice(0, at), tag: image.slice(at + 1) };
  const slash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  if (colon > slash) return { repository: image.slice(0, colon), tag: image.slice(colon + 1) };
  return { repository: image, tag: "latest" };
}
