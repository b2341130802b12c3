import { execFile } from "node:child_process";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, type Home, makeHome, type Serve, serveForFile, startServe, TOKEN } from "../http/support.js";
import { type Receiver, startReceiver } from "./receiver.js";

/**
 * `/schedule` on the HTTP surface of a real `runtime-kernel serve --http` with a journal store:
 * every route and code of Vexa's schedule API, bad input refused naming the field with nothing
 * stored, a receiver on loopback getting the calls, and a serve killed with SIGKILL while a job
 * fires firing it again after its restart, with the same idempotency key.
 */
let receiver: Receiver;
beforeAll(async () => {
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver?.close();
});

const inSeconds = (s: number) => Date.now() / 1000 + s;

const CLI = [
  "--import",
  import.meta.resolve("tsx"),
  join(resolve(import.meta.dirname, "../../.."), "src/cli.ts"),
];

/** `runtime-kernel schedule ARGS` against `serve`'s HTTP surface. */
function runCli(
  serve: Serve,
  home: Home,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [...CLI, "schedule", ...args],
      {
        env: {
          ...home.env,
          RUNTIME_KERNEL_HTTP: serve.url.replace("http://", ""),
          RUNTIME_KERNEL_TOKEN: TOKEN,
          NO_COLOR: "1",
        },
      },
      (error, stdout, stderr) =>
        done({ code: error ? Number((error as { code?: number }).code) : 0, stdout, stderr }),
    );
  });
}

describe("serve --http with schedule.store: journal", () => {
  const running = serveForFile({ schedule: { store: "journal" } });
  const api = (method: string, path: string, options?: Parameters<typeof call>[3]) =>
    call(running.serve.url, method, path, options);

  it("POST /schedule answers 201 with the job; GET lists it; DELETE cancels it, then 404", async () => {
    const created = await api("POST", "/schedule", {
      body: {
        execute_at: inSeconds(3600),
        request: { url: `${receiver.url}/later`, headers: { "X-Internal-Secret": "s3cret" }, body: { a: 1 } },
        retry: { max_attempts: 2 },
        metadata: { source: "test" },
      },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      status: "pending",
      request: { method: "POST", headers: { "X-Internal-Secret": "[redacted]" }, timeout: 30 },
      retry: { max_attempts: 2, backoff: [30, 120, 300], attempt: 0 },
      metadata: { source: "test" },
      cron: null,
    });
    const id = created.body.job_id as string;
    expect(id).toMatch(/^job_[0-9a-f]{16}$/);
    expect(JSON.stringify(created.body)).not.toContain("s3cret");

    const listed = await api("GET", "/schedule");
    expect(listed.status).toBe(200);
    expect(listed.body.map((j: { job_id: string }) => j.job_id)).toContain(id);
    expect((await api("GET", `/schedule/${id}`)).body.job_id).toBe(id);

    const cancelled = await api("DELETE", `/schedule/${id}`);
    expect(cancelled).toMatchObject({ status: 200, body: { job_id: id, status: "cancelled" } });
    expect(await api("DELETE", `/schedule/${id}`)).toMatchObject({
      status: 404,
      body: { detail: "unknown job" },
    });
    expect(
      (await api("GET", "/schedule?status=cancelled")).body.map((j: { job_id: string }) => j.job_id),
    ).toContain(id);
  });

  it("returns the existing job for a duplicate idempotency key", async () => {
    const spec = {
      cron: "0 9 * * 1",
      request: { url: `${receiver.url}/weekly` },
      idempotency_key: "weekly-1",
    };
    const first = await api("POST", "/schedule", { body: spec });
    const second = await api("POST", "/schedule", { body: spec });
    expect(second.status).toBe(201);
    expect(second.body.job_id).toBe(first.body.job_id);
  });

  it("refuses bad input with 400 naming the field, and stores nothing", async () => {
    const before = (await api("GET", "/schedule?limit=1000")).body.length;
    const cases: Array<[unknown, string]> = [
      [{ cron: "61 * * * *", request: { url: receiver.url } }, "cron"],
      [{ execute_at: inSeconds(-3600), request: { url: receiver.url } }, "execute_at"],
      [{ execute_at: inSeconds(60), request: { url: "file:///etc/passwd" } }, "request.url"],
      [
        { execute_at: inSeconds(60), request: { url: receiver.url, body: "x".repeat(1024 * 1024 + 1) } },
        "request.body",
      ],
      [{ execute_at: inSeconds(60), request: { url: receiver.url }, timezone: "UTC" }, "timezone"],
      [{ execute_at: inSeconds(60), request: { url: receiver.url, verb: "GET" } }, "request.verb"],
      [{ cron: "* * * * *", request: {} }, "request.url"],
    ];
    for (const [body, path] of cases) {
      const refused = await api("POST", "/schedule", { body });
      expect(refused.status, JSON.stringify(refused.body)).toBe(400);
      expect(refused.body.code).toBe("INVALID_SPEC");
      expect(refused.body.issues.map((i: { path: string }) => i.path)).toContain(path);
      expect(refused.body.detail).toContain(path);
    }
    expect((await api("GET", "/schedule?limit=1000")).body.length).toBe(before);
    expect(await api("GET", "/schedule?status=bogus")).toMatchObject({
      status: 400,
      body: { code: "INVALID_SPEC" },
    });
    expect(await api("GET", "/schedule?limit=ten")).toMatchObject({
      status: 400,
      body: { issues: [{ path: "limit" }] },
    });
  });

  it("asks for the bearer token, says in /health that the scheduler is live, and documents the routes", async () => {
    expect((await api("GET", "/schedule", { token: null })).status).toBe(401);
    expect((await api("GET", "/health", { token: null })).body.checks).toMatchObject({ scheduler: true });
    const doc = await api("GET", "/openapi.json");
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(["/schedule", "/schedule/{job_id}"]));
  });

  it("runtime-kernel schedule add, ls and rm drive the same routes", async () => {
    const cli = (...args: string[]) => runCli(running.serve, running.home, args);
    const added = await cli(
      "add",
      "--at",
      "+1h",
      "-H",
      "X-Token: t0k",
      "-d",
      '{"n":1}',
      "--key",
      "cli-1",
      "-q",
      `${receiver.url}/cli`,
    );
    expect(added).toMatchObject({ code: 0, stderr: "" });
    const id = added.stdout.trim();
    expect(id).toMatch(/^job_[0-9a-f]{16}$/);
    const again = await cli("add", "--at", "+2h", "--key", "cli-1", "-q", `${receiver.url}/cli`);
    expect(again.stdout.trim()).toBe(id);
    const cron = await cli(
      "add",
      "--cron",
      "*/5 * * * *",
      "--retries",
      "5",
      "--backoff",
      "1,2",
      `${receiver.url}/cron`,
    );
    expect(cron.stdout).toMatch(/✔ job_[0-9a-f]{16} POST .*\/cron · cron \*\/5 \* \* \* \*, first at /);

    const listed = await cli("ls");
    expect(listed.code).toBe(0);
    expect(listed.stdout.split("\n")[0]).toMatch(/^JOB\s+STATUS\s+DUE\s+WHEN\s+TARGET\s+FAILED\s+LAST$/);
    expect(listed.stdout).toContain(id);
    const [job] = JSON.parse((await cli("ls", "--json", "--limit", "1000")).stdout).filter(
      (j: { job_id: string }) => j.job_id === id,
    );
    expect(job).toMatchObject({
      request: { headers: { "X-Token": "[redacted]" }, body: { n: 1 } },
      idempotency_key: "cli-1",
    });

    expect(await cli("rm", id)).toMatchObject({
      code: 0,
      stdout: expect.stringContaining(`${id} cancelled`),
    });
    const missing = await cli("rm", id);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`${id}: unknown job [JOB_NOT_FOUND]`);
    const bad = await cli("add", "--cron", "61 * * * *", `${receiver.url}/x`);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/cron: is not a valid 5-field cron expression.*\[INVALID_SPEC\]/);
    expect((await cli("add", `${receiver.url}/x`)).code).toBe(2);
  });

  it("fires a due job at a receiver on loopback, with the idempotency key", async () => {
    const created = await api("POST", "/schedule", {
      body: { execute_at: inSeconds(1), request: { url: `${receiver.url}/due`, body: { hello: "world" } } },
    });
    const calls = await receiver.received(receiver.calls.length + 1);
    const call = calls.find((c) => c.path === "/due")!;
    expect(JSON.parse(call.body)).toEqual({ hello: "world" });
    expect(call.headers["idempotency-key"]).toBe(`${created.body.job_id}:${created.body.execute_at}`);
    for (;;) {
      const job = await api("GET", `/schedule/${created.body.job_id}`);
      if (job.body.status === "completed") {
        expect(job.body.result).toEqual({ status_code: 200 });
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
});

describe("serve --http without a scheduler", () => {
  const running = serveForFile();

  it("answers 503 on /schedule, as Vexa's runtime does, and has no scheduler check", async () => {
    const refused = await call(running.serve.url, "POST", "/schedule", {
      body: { cron: "* * * * *", request: { url: "http://x.test/y" } },
    });
    expect(refused).toMatchObject({ status: 503, body: { detail: "scheduler not wired" } });
    expect((await call(running.serve.url, "GET", "/schedule")).status).toBe(503);
    expect((await call(running.serve.url, "GET", "/health")).body.checks.scheduler).toBeUndefined();
  });
});

describe("serve killed while a job fires", () => {
  it("fires the job again after the restart, with the same idempotency key, then records it", async () => {
    const home = makeHome({ schedule: { store: "journal" } });
    try {
      let first = true;
      receiver.answer((call) => {
        if (call.path !== "/crash") return 200;
        if (first) {
          first = false;
          return "hang";
        }
        return 200;
      });
      const serve = await startServe(home);
      const before = receiver.calls.filter((c) => c.path === "/crash").length;
      const arrived = receiver.received(receiver.calls.length + 1);
      const created = await call(serve.url, "POST", "/schedule", {
        body: { execute_at: inSeconds(1), request: { url: `${receiver.url}/crash` } },
      });
      await arrived;
      expect((await call(serve.url, "GET", `/schedule/${created.body.job_id}`)).body.status).toBe(
        "executing",
      );
      await serve.kill();

      const again = await startServe(home);
      try {
        expect(again.stderr()).toContain("1 job(s) that were firing when the last serve stopped fire again");
        let job = (await call(again.url, "GET", `/schedule/${created.body.job_id}`)).body;
        while (job.status !== "completed") {
          await new Promise((resolve) => setTimeout(resolve, 50));
          job = (await call(again.url, "GET", `/schedule/${created.body.job_id}`)).body;
        }
        const crashes = receiver.calls.filter((c) => c.path === "/crash").slice(before);
        expect(crashes).toHaveLength(2);
        expect(crashes[1]!.headers["idempotency-key"]).toBe(crashes[0]!.headers["idempotency-key"]);
        // The crash is not a failed attempt.
        expect(job.retry.attempt).toBe(0);
      } finally {
        await again.stop();
      }
    } finally {
      receiver.answer(200);
      await home.cleanup();
    }
  });
});
