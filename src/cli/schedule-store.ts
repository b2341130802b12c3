/**
 * How `serve` runs the scheduler: the store a config (or `--schedule`) names, opened only when
 * asked for (so Redis's client loads only for a Redis store), and a scheduler on the kernel.
 * @module
 */
import { join } from "node:path";
import type { RuntimeKernel } from "../index.js";
import type { Scheduler } from "../schedule/index.js";
import { defaultStateDir } from "./backends.js";
import { UsageError } from "./command.js";
import type { ServeConfig } from "./config.js";

/** Where jobs live: the config's `schedule.store`. */
export type ScheduleStoreSetting = NonNullable<ServeConfig["schedule"]>["store"];

/** Reads `--schedule`: `journal`, or a `redis://` / `rediss://` URL. */
export function scheduleFlag(text: string): ScheduleStoreSetting {
  if (text === "journal") return "journal";
  if (/^rediss?:\/\//.test(text)) return { redis: text };
  throw new UsageError(`--schedule takes journal or a redis:// URL (got "${text}")`, "serve");
}

/** A description of the store for the listening line: never a password. */
export function describeStore(store: ScheduleStoreSetting, kernelId: string, env: NodeJS.ProcessEnv): string {
  if (store === "journal") return `journal ${journalPath(kernelId, env)}`;
  if ("journal" in store) return `journal ${store.journal}`;
  const url = new URL(store.redis);
  return `redis ${url.protocol}//${url.host}`;
}

function journalPath(kernelId: string, env: NodeJS.ProcessEnv): string {
  return join(defaultStateDir(kernelId, env), "schedule.journal");
}

/** Opens the store and starts a scheduler that fires HTTP calls and starts workloads on `kernel`. */
export async function startScheduler(
  setting: NonNullable<ServeConfig["schedule"]>,
  kernel: RuntimeKernel,
  profiles: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<Scheduler> {
  const { createScheduler, openJournalStore, openRedisStore } = await import("../schedule/index.js");
  const { store } = setting;
  const opened =
    typeof store === "object" && "redis" in store
      ? await openRedisStore({ url: store.redis, ...(store.prefix ? { prefix: store.prefix } : {}) })
      : await openJournalStore({
          path: store === "journal" ? journalPath(kernel.kernelId, env) : store.journal,
        });
  return createScheduler({
    store: opened,
    kernel,
    profiles,
    ...(setting.timeZone ? { timeZone: setting.timeZone } : {}),
  });
}
