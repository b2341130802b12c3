import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyCallbackSignature } from "../../../src/http/index.js";
import { eventProblems, statusProblems } from "../../fixtures/http/contract.js";
import { type Receiver, startReceiver } from "../../fixtures/http/receiver.js";
import { call, type Home, type Json, makeHome, SECRET, type Serve, startServe } from "./support.js";

/**
 * runtime.v1 over HTTP against a real `runtime-kernel serve --http` on the process backend,
 * with a real callback receiver: every route and code of the contract, every status and every
 * callback checked against the contract's JSON Schema (test/fixtures/http/contract.ts).
 */
let home: Home;
let serve: Serve;
let receiver: Receiver;

beforeAll(async () => {
  home = makeHome({ ownerQuota: 1 });
  receiver = await startReceiver();
  // Callbacks go only to the receiver's host: a create naming another is refused (bad input).
  serve = await startServe(home, ["--callback-allow-host", "127.0.0.1"]);
}, 60_000);

afterAll(async () => {
  if (serve && serve.child.exitCode === null) await serve.stop();
  await receiver?.close();
  await home?.cleanup();
}, 60_000);

const api = (method: string, path: string, options?: Parameters<typeof call>[3]) =>
  call(serve.url, method, path, options);

/** A status answer: conforms to the contract, and is returned for assertions. */
function conforming(response: { status: number; body: Json }, status: number) {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
  expect(statusProblems(response.body)).toEqual([]);
  return response.body;
}

/** The callbacks acknowledged for one workload, each checked against the contract. */
function callbacksOf(workloadId: string) {
  const got = receiver.acknowledged().filter((r) => r.json.workloadId === workloadId);
  for (const r of got) expect(eventProblems(r.json), r.body).toEqual([]);
  return got;
}

async function callbacksUntil(workloadId: string, state: string) {
  for (;;) {
    const got = callbacksOf(workloadId);
    if (got.some((r) => r.json.state === state)) return got;
    await receiver.waitFor(receiver.requests.length + 1);
  }
}

describe("runtime.v1 over HTTP: the lifecycle", () => {
  it("create, idempotent create, get, list, stop, destroy: each answer and each callback as the contract says", async () => {
    const spec = {
      workloadId: "life",
      profile: "sleeper",
      env: { GREETING: "hi" },
      callbackUrl: receiver.url,
    };
    const created = conforming(
      await api("POST", "/workloads", { body: spec, headers: { "x-trace-id": "trace-life" } }),
      201,
    );
    expect(created).toMatchObject({
      workloadId: "life",
      profile: "sleeper",
      state: "running",
      backend: "process",
      ports: {},
    });
    await callbacksUntil("life", "running");

    const again = await api("POST", "/workloads", { body: spec });
    expect(conforming(again, 201)).toEqual(created);

    expect(conforming(await api("GET", "/workloads/life"), 200)).toEqual(created);
    const list = await api("GET", "/workloads");
    expect(list.status).toBe(200);
    for (const status of list.body) expect(statusProblems(status)).toEqual([]);
    expect(list.body).toContainEqual(created);

    const stopped = conforming(
      await api("POST", "/workloads/life/stop", { body: { reason: "stopped" } }),
      200,
    );
    expect(stopped).toMatchObject({ state: "stopped", stopReason: "stopped", exitCode: 0 });
    expect(Date.parse(stopped.stoppedAt)).toBeGreaterThanOrEqual(Date.parse(stopped.startedAt));

    const destroyed = conforming(await api("DELETE", "/workloads/life"), 200);
    expect(destroyed).toMatchObject({ state: "destroyed", stopReason: "stopped", exitCode: 0 });
    expect((await api("GET", "/workloads/life")).status).toBe(404);

    const got = await callbacksUntil("life", "destroyed");
    // One run's events, in order: the idempotent create added none.
    expect(got.map((r) => r.json.state)).toEqual(["starting", "running", "stopping", "stopped", "destroyed"]);
    expect(got.map((r) => r.json.stopReason)).toEqual([
      undefined,
      undefined,
      "stopped",
      "stopped",
      undefined,
    ]);
    for (const r of got) {
      expect(r.headers["x-trace-id"]).toBe("trace-life");
      expect(verifyCallbackSignature({ secret: SECRET, body: r.body, headers: r.headers })).toBe(true);
    }
    expect(new Set(got.map((r) => r.headers["x-runtime-event-id"])).size).toBe(5);
    // serve --json: the workload's transitions and the requests about it carry the trace id.
    const lines = serve
      .stdout()
      .split("\n")
      .filter((l) => l.includes('"trace-life"'))
      .map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.workloadId === "life" && l.state).map((l) => l.state)).toEqual([
      "starting",
      "running",
      "stopping",
      "stopped",
      "destroyed",
    ]);
    expect(lines).toContainEqual(expect.objectContaining({ event: "request", method: "POST", status: 201 }));
    expect(lines).toContainEqual(
      expect.objectContaining({ event: "callback_delivered", workloadId: "life" }),
    );
  });

  it("a workload that exits by itself is stopped with its exit code, as failed", async () => {
    conforming(
      await api("POST", "/workloads", {
        body: { workloadId: "three", profile: "exit3", env: {}, callbackUrl: receiver.url },
      }),
      201,
    );
    const got = await callbacksUntil("three", "stopped");
    expect(got.at(-1)?.json).toMatchObject({ state: "stopped", stopReason: "failed", exitCode: 3 });
    expect(conforming(await api("GET", "/workloads/three"), 200)).toMatchObject({
      state: "stopped",
      stopReason: "failed",
      exitCode: 3,
    });
    conforming(await api("DELETE", "/workloads/three"), 200);
  });

  it("answers 502 when the backend cannot start it, and the status and callbacks say start_failed", async () => {
    const failed = await api("POST", "/workloads", {
      body: { workloadId: "broken", profile: "broken", env: {}, callbackUrl: receiver.url },
    });
    expect(failed.status).toBe(502);
    expect(failed.body).toMatchObject({ code: "START_FAILED", detail: expect.any(String) });
    expect(conforming(await api("GET", "/workloads/broken"), 200)).toMatchObject({
      state: "stopped",
      stopReason: "start_failed",
    });
    const got = await callbacksUntil("broken", "stopped");
    expect(got.map((r) => r.json.state)).toEqual(["starting", "stopped"]);
    conforming(await api("DELETE", "/workloads/broken"), 200);
  });

  it("answers 429 when the owner's quota is used up, starting nothing", async () => {
    const owned = (id: string) => ({ workloadId: id, profile: "sleeper", env: { VEXA_OWNER: "acme" } });
    conforming(await api("POST", "/workloads", { body: owned("quota-1") }), 201);
    const refused = await api("POST", "/workloads", { body: owned("quota-2") });
    expect(refused.status).toBe(429);
    expect(refused.body.code).toBe("QUOTA_EXCEEDED");
    expect((await api("GET", "/workloads/quota-2")).status).toBe(404);
    conforming(await api("DELETE", "/workloads/quota-1"), 200);
  });

  it("answers 404 for an unknown workload on every workload route", async () => {
    for (const [method, path] of [
      ["GET", "/workloads/nobody"],
      ["POST", "/workloads/nobody/stop"],
      ["DELETE", "/workloads/nobody"],
    ] as const) {
      const response = await api(method, path);
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(response.body).toMatchObject({
        code: "WORKLOAD_NOT_FOUND",
        detail: expect.stringContaining("nobody"),
      });
    }
  });

  it("answers 400 for an unknown profile, a backend that is not this kernel's, and a stop reason a caller cannot ask for", async () => {
    const profile = await api("POST", "/workloads", { body: { workloadId: "p", profile: "nope", env: {} } });
    expect(profile.status).toBe(400);
    expect(profile.body.issues).toEqual([
      { path: "profile", message: expect.stringContaining("unknown profile") },
    ]);
    const backend = await api("POST", "/workloads", {
      body: { workloadId: "b", profile: "sleeper", env: {}, backend: "docker" },
    });
    expect(backend.status).toBe(400);
    expect(backend.body.issues.map((i: { path: string }) => i.path)).toEqual(["backend"]);
    conforming(
      await api("POST", "/workloads", { body: { workloadId: "r", profile: "sleeper", env: {} } }),
      201,
    );
    const reason = await api("POST", "/workloads/r/stop", { body: { reason: "oom" } });
    expect(reason.status).toBe(400);
    expect(reason.body.issues.map((i: { path: string }) => i.path)).toEqual(["reason"]);
    expect(conforming(await api("GET", "/workloads/r"), 200).state).toBe("running");
    conforming(await api("DELETE", "/workloads/r"), 200);
    for (const id of ["p", "b"]) expect((await api("GET", `/workloads/${id}`)).status).toBe(404);
  });

  it("serves /health without a token, and /openapi.json describing every route", async () => {
    const health = await api("GET", "/health", { token: null });
    expect(health).toMatchObject({
      status: 200,
      body: { status: "ok", checks: { kernel: true, callbacks: true } },
    });
    expect((await api("GET", "/openapi.json", { token: null })).status).toBe(401);
    const doc = await api("GET", "/openapi.json");
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths).sort()).toEqual([
      "/health",
      "/openapi.json",
      // Mounted by serve with or without a scheduler (503 without one), as in Vexa's runtime.
      "/schedule",
      "/schedule/{job_id}",
      "/workloads",
      "/workloads/{workloadId}",
      "/workloads/{workloadId}/stop",
    ]);
    expect(doc.body.components.schemas.WorkloadSpec).toMatchObject({
      required: ["workloadId", "profile", "env"],
      additionalProperties: false,
    });
  });
});

describe("runtime.v1 over HTTP: bad input", () => {
  const refusals: Array<[string, () => Promise<{ status: number; body: Json }>, number, string[]]> = [
    ["malformed JSON", () => api("POST", "/workloads", { body: '{"workloadId": "x",' }), 400, [""]],
    [
      "a 10 MB body",
      () =>
        api("POST", "/workloads", {
          body: JSON.stringify({
            workloadId: "big",
            profile: "sleeper",
            env: { A: "x".repeat(10 * 1024 * 1024) },
          }),
        }),
      413,
      [],
    ],
    [
      "unknown fields",
      () =>
        api("POST", "/workloads", {
          body: { workloadId: "x", profile: "sleeper", env: {}, command: ["sh"], owner: "me" },
        }),
      400,
      ["command", "owner"],
    ],
    [
      "non-string env values",
      () =>
        api("POST", "/workloads", {
          body: { workloadId: "x", profile: "sleeper", env: { N: 1, B: true, O: {} } },
        }),
      400,
      ["env.B", "env.N", "env.O"],
    ],
    [
      "an env key __proto__, which a schema would silently drop",
      () =>
        api("POST", "/workloads", {
          body: '{"workloadId":"x","profile":"sleeper","env":{"__proto__":"x","A":"1"}}',
        }),
      400,
      ["env.__proto__"],
    ],
    [
      "a callbackUrl whose host the server does not send callbacks to",
      () =>
        api("POST", "/workloads", {
          body: {
            workloadId: "x",
            profile: "sleeper",
            env: {},
            callbackUrl: "http://169.254.169.254/latest",
          },
        }),
      400,
      ["callbackUrl"],
    ],
    [
      "a workloadId that is not a DNS label",
      () => api("POST", "/workloads", { body: { workloadId: "Not_A.Label", profile: "sleeper", env: {} } }),
      400,
      ["workloadId"],
    ],
    [
      "a wrong bearer token",
      () =>
        api("POST", "/workloads", { body: { workloadId: "x", profile: "sleeper", env: {} }, token: "guess" }),
      401,
      [],
    ],
    [
      "no bearer token",
      () =>
        api("POST", "/workloads", { body: { workloadId: "x", profile: "sleeper", env: {} }, token: null }),
      401,
      [],
    ],
    [
      "a missing env",
      () => api("POST", "/workloads", { body: { workloadId: "x", profile: "sleeper" } }),
      400,
      ["env"],
    ],
    [
      "a body that is not JSON by its content type",
      () =>
        api("POST", "/workloads", {
          body: '{"workloadId":"x","profile":"sleeper","env":{}}',
          headers: { "content-type": "text/plain" },
        }),
      415,
      [],
    ],
    [
      "a request from a browser",
      () =>
        api("POST", "/workloads", {
          body: { workloadId: "x", profile: "sleeper", env: {} },
          headers: { origin: "https://evil.example" },
        }),
      403,
      [],
    ],
  ];

  for (const [name, send, status, paths] of refusals) {
    it(`${name}: ${status}, nothing starts, the server stays up`, async () => {
      const before = (await api("GET", "/workloads")).body.length;
      const response = await send();
      expect(response.status, JSON.stringify(response.body).slice(0, 500)).toBe(status);
      expect(typeof response.body.detail).toBe("string");
      expect(typeof response.body.code).toBe("string");
      if (paths.length > 0)
        expect(response.body.issues.map((i: { path: string }) => i.path).sort()).toEqual(paths);
      expect((await api("GET", "/workloads")).body).toHaveLength(before);
      expect((await api("GET", "/health")).status).toBe(200);
    });
  }

  it("never echoes a secret from a refused body", async () => {
    const secret = "sk-live-do-not-echo";
    for (const body of [
      `{"env":{"TOKEN":"${secret}"`,
      { workloadId: "x", profile: "nope", env: { TOKEN: secret } },
    ]) {
      const response = await api("POST", "/workloads", { body });
      expect(response.status).toBe(400);
      expect(JSON.stringify(response.body)).not.toContain(secret);
    }
    expect(serve.stdout() + serve.stderr()).not.toContain(secret);
  });
});

describe("runtime.v1 over HTTP: durable callbacks", () => {
  it("a receiver that fails twice, then acknowledges, gets every event, in order", async () => {
    receiver.failNext(500, 503);
    const before = receiver.requests.length;
    conforming(
      await api("POST", "/workloads", {
        body: { workloadId: "retry", profile: "sleeper", env: {}, callbackUrl: receiver.url },
      }),
      201,
    );
    conforming(await api("DELETE", "/workloads/retry"), 200);
    const got = await callbacksUntil("retry", "destroyed");
    expect(got.map((r) => r.json.state)).toEqual(["starting", "running", "stopping", "stopped", "destroyed"]);
    const sent = receiver.requests.slice(before).filter((r) => r.json.workloadId === "retry");
    expect(sent.slice(0, 3).map((r) => r.status)).toEqual([500, 503, 200]);
    // The two failures and the success were one event, retried under one id.
    expect(new Set(sent.slice(0, 3).map((r) => r.headers["x-runtime-event-id"])).size).toBe(1);
  });
});

describe("runtime.v1 over HTTP: a dead receiver", () => {
  it("does not hold up a live one: the live receiver gets every event while the dead one's wait", async () => {
    const refused = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    const dead = { profile: "sleeper", env: {}, callbackUrl: `http://127.0.0.1:${refused}/runtime/callback` };
    for (const id of ["dead-1", "dead-2", "dead-3"]) {
      conforming(await api("POST", "/workloads", { body: { workloadId: id, ...dead } }), 201);
    }
    conforming(
      await api("POST", "/workloads", {
        body: { workloadId: "alive", profile: "sleeper", env: {}, callbackUrl: receiver.url },
      }),
      201,
    );
    conforming(await api("DELETE", "/workloads/alive"), 200);
    // The dead receiver's events are retried for as long as their budget lasts (a day by
    // default): had they been in the live one's way, this would never see "destroyed".
    const got = await callbacksUntil("alive", "destroyed");
    expect(got.map((r) => r.json.state)).toEqual(["starting", "running", "stopping", "stopped", "destroyed"]);
    for (const id of ["dead-1", "dead-2", "dead-3"]) conforming(await api("DELETE", `/workloads/${id}`), 200);
  });
});

describe("runtime.v1 over HTTP: the outbox survives a crash", () => {
  it("events for a receiver that is down while serve is SIGKILLed arrive after the restart, none lost, in order", async () => {
    const crashHome = makeHome({ kernelId: "http-test" });
    // A port reserved for a receiver that is not up yet: connections to it are refused.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    const first = await startServe(crashHome);
    try {
      const body = {
        workloadId: "crash",
        profile: "sleeper",
        env: {},
        callbackUrl: `http://127.0.0.1:${port}/runtime/callback`,
      };
      conforming(await call(first.url, "POST", "/workloads", { body }), 201);
      conforming(await call(first.url, "POST", "/workloads/crash/stop"), 200);
      await first.kill();

      const late = await startReceiver({ port });
      try {
        const second = await startServe(crashHome);
        try {
          for (;;) {
            const states = late.acknowledged().map((r) => r.json.state);
            if (states.includes("stopped")) break;
            await late.waitFor(late.requests.length + 1);
          }
          const acked = late.acknowledged();
          for (const r of acked) expect(eventProblems(r.json)).toEqual([]);
          // Every event from before the crash, in order, first; a recovery may report more after them.
          expect(acked.slice(0, 4).map((r) => r.json.state)).toEqual([
            "starting",
            "running",
            "stopping",
            "stopped",
          ]);
          conforming(await call(second.url, "DELETE", "/workloads/crash"), 200);
        } finally {
          await second.stop();
        }
      } finally {
        await late.close();
      }
    } finally {
      if (first.child.exitCode === null && first.child.signalCode === null) await first.kill();
      await crashHome.cleanup();
    }
  });
});
