/**
 * `GET /health`: 200 `{status: "ok", checks}` when every check passes, else 503 `degraded`.
 * Reachable without the bearer token, for load balancers and orchestrators.
 * @module
 */
import { healthSchema } from "../contract.js";
import { type RouteGroup, route } from "../router.js";

/** A named check: true when what it checks is fine. It may be async; a throw or a timeout is false. */
export type HealthCheck = () => boolean | Promise<boolean>;

/** How long one check may take before it counts as failed. */
const CHECK_TIMEOUT_MS = 2_000;

async function run(check: HealthCheck): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve().then(check),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), CHECK_TIMEOUT_MS);
      }),
    ]).then((ok) => ok === true);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** The health route, running `checks`. */
export function healthRoutes(checks: Record<string, HealthCheck>): RouteGroup {
  return [
    route({
      method: "GET",
      path: "/health",
      operationId: "health",
      summary: "Whether the kernel serves and its dependencies answer. Needs no token.",
      public: true,
      responses: {
        200: { description: "Every check passed.", schema: healthSchema },
        503: { description: "A check failed.", schema: healthSchema },
      },
      handle: async () => {
        const names = Object.keys(checks);
        const results = await Promise.all(names.map((name) => run(checks[name] as HealthCheck)));
        const ok = results.every(Boolean);
        return {
          status: ok ? 200 : 503,
          body: {
            status: ok ? "ok" : "degraded",
            checks: Object.fromEntries(names.map((name, i) => [name, results[i] as boolean])),
          },
        };
      },
    }),
  ];
}
