import { connect } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { call, serveForFile, TOKEN } from "./support.js";

/**
 * Random and hostile requests against a live `serve --http` (on the fake backend, so that
 * what a random request happens to start costs nothing): each is answered with a status,
 * and the server never exits.
 */
const running = serveForFile({ backend: "fake", http: { backend: "process", maxBodyBytes: 64 * 1024 } });

const segment = fc.oneof(
  fc.constantFrom(
    "workloads",
    "health",
    "openapi.json",
    "stop",
    "w1",
    "",
    "..",
    "%",
    "%E0%A4%A",
    "%00",
    "%2F",
  ),
  fc.string({ unit: "grapheme", maxLength: 20 }).map(encodeURIComponent),
  fc.string({ maxLength: 80 }),
);
const path = fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => `/${parts.join("/")}`);
const specLike = fc.record(
  {
    workloadId: fc.oneof(fc.constantFrom("w1", "fz-1", "", "A"), fc.string({ maxLength: 70 }), fc.integer()),
    profile: fc.oneof(fc.constantFrom("sleeper", "exit3", "nope"), fc.jsonValue()),
    env: fc.oneof(
      fc.dictionary(fc.string({ maxLength: 10 }), fc.oneof(fc.string(), fc.jsonValue())),
      fc.jsonValue(),
    ),
    callbackUrl: fc.oneof(fc.webUrl(), fc.string()),
    resources: fc.jsonValue(),
    idleTimeoutSec: fc.oneof(fc.integer(), fc.double()),
    maxLifetimeSec: fc.oneof(fc.nat(), fc.constant(1e300)),
    backend: fc.constantFrom("process", "docker", "k8s", "x"),
    extra: fc.jsonValue(),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  fc.constant(undefined),
  specLike.map((v) => JSON.stringify(v)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.constantFrom('{"reason":"stopped"}', '{"reason":"oom"}', "{", "null", "[]", '{"__proto__":{"x":1}}'),
);

describe("the HTTP surface under random and hostile requests", () => {
  it("answers every structured request with a status and a JSON error body", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
        path,
        body,
        fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", undefined),
        fc.oneof(fc.constant(TOKEN), fc.constant(null), fc.string({ maxLength: 40 })),
        fc.option(fc.string({ maxLength: 200 }), { nil: undefined }),
        async (method, target, payload, type, token, traceId) => {
          const headers: Record<string, string> = {};
          if (type !== undefined) headers["content-type"] = type;
          if (traceId !== undefined && /^[\x20-\x7e]*$/.test(traceId)) headers["x-trace-id"] = traceId;
          const response = await call(running.serve.url, method, target, {
            ...(payload !== undefined && method !== "GET" ? { body: payload } : {}),
            headers,
            token: token !== null && /^[\x20-\x7e]*$/.test(token) ? token : null,
          });
          expect(response.status).toBeGreaterThanOrEqual(200);
          expect(response.status).toBeLessThan(600);
          if (response.status >= 400) {
            expect(typeof response.body.detail).toBe("string");
            expect(typeof response.body.code).toBe("string");
          }
          expect(response.status).not.toBe(500);
        },
      ),
      { numRuns: 400 },
    );
    expect(running.serve.child.exitCode).toBeNull();
  }, 120_000);

  it("survives raw bytes that are not HTTP, or barely", async () => {
    const raw = fc.oneof(
      fc.uint8Array({ maxLength: 2_000 }).map((b) => Buffer.from(b)),
      fc
        .tuple(
          fc.constantFrom("GET", "POST", "DELETE", "BREW", ""),
          fc.string({ maxLength: 100 }),
          fc.array(fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 50 })), { maxLength: 5 }),
          fc.string({ maxLength: 300 }),
        )
        .map(([m, p, hs, b]) =>
          Buffer.from(
            `${m} ${p} HTTP/1.1\r\nHost: x\r\n${hs.map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n${b}`,
          ),
        ),
      fc.constantFrom(
        Buffer.from("POST /workloads HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{"),
        Buffer.from("POST /workloads HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        Buffer.from(`GET /${"a".repeat(70_000)} HTTP/1.1\r\nHost: x\r\n\r\n`),
      ),
    );
    await fc.assert(
      fc.asyncProperty(raw, async (bytes) => {
        const { port } = new URL(running.serve.url);
        const answer = await new Promise<string>((resolve) => {
          const socket = connect(Number(port), "127.0.0.1");
          let got = "";
          socket.on("data", (chunk) => {
            got += chunk.toString("latin1");
            // One status line is enough: the server answered.
            if (/^HTTP\/1\.1 \d{3}/.test(got)) socket.destroy();
          });
          socket.on("error", () => {});
          socket.on("close", () => resolve(got));
          socket.write(bytes);
          // Say we are done sending, so a request that waits for more body is answered or closed.
          socket.end();
        });
        // Either a status line, or the server closed a connection it could not parse.
        if (answer !== "") expect(answer).toMatch(/^HTTP\/1\.1 \d{3}/);
      }),
      { numRuns: 200 },
    );
    expect(running.serve.child.exitCode).toBeNull();
    expect((await call(running.serve.url, "GET", "/health")).status).toBe(200);
  }, 120_000);
});
