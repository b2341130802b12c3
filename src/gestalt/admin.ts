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

/** What an error body may quote of a message or a path: enough to read, never a megabyte. */
const MAX_QUOTED = 1024;
const quote = (text: string) => (text.length > MAX_QUOTED ? `${text.slice(0, MAX_QUOTED)}… (cut)` : text);

function send(res: ServerResponse, status: number, body: unknown): void {
  let text: string;
  try {
    text = JSON.stringify(body);
  } catch {
    // A view that cannot be serialised is the host's bug: say so rather than throw in a callback.
    [status, text] = [500, JSON.stringify({ error: "the admin view could not be serialised" })];
  }
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}

/**
 * The path of a request target, or undefined when it is not one (RFC 9112: origin-form
 * `/path?query`, or absolute-form `http://host/path`). Parsed by hand: `new URL` and
 * `decodeURIComponent` throw on what a client may send, and a throw here would take the
 * host's process down.
 */
function pathOf(target: string): string | undefined {
  const absolute = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(target);
  const rest = absolute ? target.slice(absolute[0].length) || "/" : target;
  if (!rest.startsWith("/")) return undefined;
  return rest.replace(/[?#].*$/s, "").replace(/\/+$/, "");
}

/** `text` percent-decoded, or undefined when its escapes are malformed or not UTF-8. */
function decoded(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/**
 * Serves the host's admin view over HTTP. Whatever a client sends, it answers: a target
 * that is not a path or a provider name with malformed percent-escapes is 400, an unknown
 * provider 404, a failure of the host 500; nothing a request holds can make it throw.
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
  const providers = `${base}/providers`;
  return (req, res, next) => {
    const path = pathOf(req.url ?? "/");
    if (path === undefined) return send(res, 400, { error: "the request target is not a path" });
    const sessions = path.startsWith(`${providers}/`)
      ? /^\/([^/]+)\/sessions$/.exec(path.slice(providers.length))
      : null;
    if (path !== providers && !sessions) {
      if (next) return next();
      return send(res, 404, { error: `no route ${quote(path)}` });
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      return send(res, 405, { error: "only GET" });
    }
    const name = sessions ? decoded(sessions[1]!) : undefined;
    if (sessions && name === undefined) {
      return send(res, 400, {
        error: `malformed percent-encoding in the provider name ${quote(sessions[1]!)}`,
      });
    }
    // `then` first: a host that throws synchronously is answered like one that rejects.
    Promise.resolve()
      .then(
        (): Promise<unknown> => (name !== undefined ? host.describeSessions(name) : host.describeProviders()),
      )
      .then(
        (body) => send(res, 200, body),
        (error: unknown) => {
          const message = error instanceof Error ? error.message : String(error);
          send(res, isRuntimeKernelError(error, "WORKLOAD_NOT_FOUND") ? 404 : 500, { error: quote(message) });
        },
      )
      .catch(() => {
        // send() does not throw; nothing is left to answer.
      });
  };
}
