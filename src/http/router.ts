/**
 * A small router: routes are declared as data (method, path template, body schema,
 * responses, handler), grouped by concept, and mounted together. The same declarations
 * drive dispatch and the OpenAPI document, so a route group added later (schedules, say)
 * is served, validated and documented by adding it to the list, nothing else.
 * @module
 */
import type { z } from "zod";

/** The methods a route may answer. */
export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** What a handler gets. */
export interface RouteRequest<Body = unknown> {
  /** Path parameters, decoded (`{workloadId}` in the template is `params.workloadId`). */
  params: Record<string, string>;
  query: URLSearchParams;
  /** The body, parsed and validated by the route's `body.schema` (undefined when absent and optional). */
  body: Body;
  /** The request's trace id (its `X-Trace-Id`, or one made for it). */
  traceId: string;
}

/** What a handler answers. */
export interface RouteReply {
  status: number;
  /** Sent as JSON; omitted for an empty body. */
  body?: unknown;
}

/** One documented response of a route. */
export interface RouteResponse {
  description: string;
  schema?: z.ZodType;
}

/** One route. */
export interface Route<Body = unknown> {
  method: HttpMethod;
  /** An OpenAPI path template: `/workloads/{workloadId}`. */
  path: string;
  operationId: string;
  summary: string;
  /** The JSON body this route takes. A refused body is a 400 naming each field. */
  body?: { schema: z.ZodType<Body>; required: boolean };
  /** Reachable without the bearer token (health probes). */
  public?: boolean;
  responses: Record<number, RouteResponse>;
  handle(request: RouteRequest<Body>): Promise<RouteReply> | RouteReply;
}

/** A set of routes about one concept, mounted together. */
export type RouteGroup = readonly Route<never>[];

/** Declares a route, typing its handler's body by its schema. */
export function route<S extends z.ZodType | undefined = undefined>(
  definition: Omit<Route<S extends z.ZodType ? z.infer<S> : undefined>, "body"> & {
    body?: { schema: S & z.ZodType; required: boolean };
  },
): Route<never> {
  return definition as unknown as Route<never>;
}

interface Compiled {
  route: Route<unknown>;
  segments: Array<{ literal: string } | { param: string }>;
}

/** The outcome of matching a request line. */
export type RouteMatch =
  | { kind: "found"; route: Route<unknown>; params: Record<string, string> }
  /** The path exists with other methods. */
  | { kind: "method"; allowed: HttpMethod[] }
  /** A path parameter is not valid percent-encoding. */
  | { kind: "malformed"; param: string }
  | { kind: "none" };

/** Routes mounted from groups, matched by method and path. */
export class Router {
  readonly #compiled: Compiled[] = [];

  constructor(groups: readonly RouteGroup[]) {
    for (const group of groups) {
      for (const r of group) {
        const segments = r.path
          .split("/")
          .slice(1)
          .map((s) => (/^\{\w+\}$/.test(s) ? { param: s.slice(1, -1) } : { literal: s }));
        const route = r as Route<unknown>;
        if (this.#compiled.some((c) => c.route.method === route.method && c.route.path === route.path)) {
          throw new Error(`route ${route.method} ${route.path} is mounted twice`);
        }
        this.#compiled.push({ route, segments });
      }
    }
  }

  /** Every mounted route, in mounting order. */
  get routes(): Route<unknown>[] {
    return this.#compiled.map((c) => c.route);
  }

  /** Finds the route for `method` and `pathname` (the raw, still percent-encoded path). */
  match(method: string, pathname: string): RouteMatch {
    const parts = pathname.split("/").slice(1);
    const allowed: HttpMethod[] = [];
    for (const { route, segments } of this.#compiled) {
      if (segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let fits = true;
      for (let i = 0; i < segments.length && fits; i++) {
        const segment = segments[i]!;
        const part = parts[i] as string;
        if ("literal" in segment) fits = segment.literal === part;
        else if (part === "") fits = false;
        else {
          try {
            params[segment.param] = decodeURIComponent(part);
          } catch {
            return { kind: "malformed", param: segment.param };
          }
        }
      }
      if (!fits) continue;
      if (route.method === method) return { kind: "found", route, params };
      allowed.push(route.method);
    }
    return allowed.length > 0 ? { kind: "method", allowed } : { kind: "none" };
  }
}
