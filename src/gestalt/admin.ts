/**
 * Inspection: the admin view of runtime providers, as a node:http handler serving
 * `GET /admin/api/v1/runtime/providers` and `GET /admin/api/v1/runtime/providers/{provider}/sessions`.
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { isRuntimeKernelError } from "../errors.js";
import type { PluginHost } from "./plugin-host.js";

/** Options of {@link createAdminHandler}. */
export interface AdminHandlerOptions {
  /** The prefix of the admin routes. Default `/admin/api/v1/runtime`. */
  basePath?: string;
}

/** A node:http handler; `next` is called for paths outside the admin routes (404 without it). */
export type AdminHandler = (req: IncomingMessage, res: ServerResponse, next?: () => void) => void;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}

/**
 * Serves the host's admin view over HTTP.
 *
 * @example
 * ```ts
 * http.createServer(createAdminHandler(host)).listen(8081, "127.0.0.1");
 * // GET /admin/api/v1/runtime/providers
 * // GET /admin/api/v1/runtime/providers/local/sessions
 * ```
 */
export function createAdminHandler(
  host: Pick<PluginHost, "describeProviders" | "describeSessions">,
  options: AdminHandlerOptions = {},
): AdminHandler {
  const base = (options.basePath ?? "/admin/api/v1/runtime").replace(/\/+$/, "");
  return (req, res, next) => {
    const path = new URL(req.url ?? "/", "http://admin.invalid").pathname.replace(/\/+$/, "");
    const providers = `${base}/providers`;
    const sessions = path.startsWith(`${providers}/`)
      ? /^\/([^/]+)\/sessions$/.exec(path.slice(providers.length))
      : null;
    if (path !== providers && !sessions) {
      if (next) return next();
      return send(res, 404, { error: `no route ${path}` });
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      return send(res, 405, { error: "only GET" });
    }
    const work = sessions
      ? host.describeSessions(decodeURIComponent(sessions[1]!))
      : host.describeProviders();
    work.then(
      (body) => send(res, 200, body),
      (error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        send(res, isRuntimeKernelError(error, "WORKLOAD_NOT_FOUND") ? 404 : 500, { error: message });
      },
    );
  };
}
