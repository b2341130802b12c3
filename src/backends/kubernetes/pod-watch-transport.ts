/**
 * The list and watch calls a {@link PodWatch} makes, over the Pods of one selector in one
 * namespace. It owns only the requests and the parsing of watch lines; the watch's state is
 * PodWatch's.
 * @module
 */
import type { KubeApi } from "./api.js";
import type { PodWatch, PodWatchTransport } from "./pod-watch.js";

/** The list and watch calls of a {@link PodWatch} over the Pods of `selector` in `namespace`. */
export function podWatchTransport(
  api: KubeApi,
  namespace: string,
  selector: string,
  timeoutSeconds: number,
): PodWatchTransport {
  return {
    list: async () => {
      const list = await api.call("list", (core) =>
        core.listNamespacedPod({ namespace, labelSelector: selector }),
      );
      return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? "" };
    },
    watch: (resourceVersion, handlers) => {
      const q = new URLSearchParams({
        watch: "true",
        labelSelector: selector,
        resourceVersion,
        allowWatchBookmarks: "true",
        // Jitter keeps many backends from reconnecting in step.
        timeoutSeconds: String(Math.round(timeoutSeconds * (0.9 + Math.random() * 0.2))),
      });
      return api.stream("watch", `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods?${q}`, {
        onLine: (line) => {
          let event: { type?: string; object?: unknown };
          try {
            event = JSON.parse(line) as { type?: string; object?: unknown };
          } catch {
            return;
          }
          if (event.type) handlers.onEvent(event.type, event.object);
        },
        onEnd: handlers.onEnd,
      });
    },
  };
}
