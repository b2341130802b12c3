import { describe, expect, it } from "vitest";
import { isRuntimeKernelError, type ValidationIssue } from "../../../src/index.js";
import { buildJob, MAX_BODY_BYTES, redact } from "../../../src/schedule/job.js";

const NOW = Date.UTC(2026, 0, 1);
const context = { now: NOW, timeZone: "UTC" };
const request = { url: "http://svc.test/hook" };

/** The issues `buildJob` refuses `input` with. */
function refusal(
  input: unknown,
  extra: Partial<typeof context> & { profiles?: string[] } = {},
): ValidationIssue[] {
  try {
    buildJob(input, { ...context, ...extra });
  } catch (error) {
    if (isRuntimeKernelError(error, "INVALID_SPEC")) {
      expect(error.message).toMatch(/^Invalid schedule job: /);
      return [...error.issues];
    }
    throw error;
  }
  throw new Error("expected a refusal");
}

const paths = (input: unknown) => refusal(input).map((i) => i.path);

describe("buildJob: what schedule.v1 accepts", () => {
  it("accepts a one-shot job with every field of the contract", () => {
    const job = buildJob(
      {
        execute_at: NOW / 1000 + 3600,
        request: {
          method: "POST",
          url: "http://meetings.internal:8080/runtime/dispatch",
          headers: { "X-Internal-Secret": "placeholder" },
          body: { task: "spawn-bot", meetingId: 7 },
          timeout: 15,
        },
        retry: { max_attempts: 4, backoff: [5, 60], attempt: 0 },
        idempotency_key: "dispatch-meeting-7",
        metadata: { source: "meeting-api" },
      },
      context,
    );
    expect(job).toMatchObject({
      status: "pending",
      execute_at: NOW / 1000 + 3600,
      request: { timeout: 15, body: { task: "spawn-bot", meetingId: 7 } },
      retry: { max_attempts: 4, backoff: [5, 60], attempt: 0 },
      idempotency_key: "dispatch-meeting-7",
      metadata: { source: "meeting-api" },
    });
  });

  it("accepts a cron job and sets its first firing to the next slot", () => {
    const job = buildJob({ cron: "0 9 * * 1", request, metadata: { source: "agent-api" } }, context);
    // 2026-01-01 is a Thursday: the next Monday 09:00 UTC is 5 January.
    expect(new Date(job.execute_at * 1000).toISOString()).toBe("2026-01-05T09:00:00.000Z");
    expect(job.cron).toBe("0 9 * * 1");
  });

  it("reads cron in the given time zone", () => {
    const job = buildJob({ cron: "0 9 * * 1", request }, { ...context, timeZone: "America/New_York" });
    expect(new Date(job.execute_at * 1000).toISOString()).toBe("2026-01-05T14:00:00.000Z");
  });

  it("merges a partial retry policy over the defaults", () => {
    expect(buildJob({ execute_at: NOW / 1000, request, retry: { max_attempts: 9 } }, context).retry).toEqual({
      max_attempts: 9,
      backoff: [30, 120, 300],
      attempt: 0,
    });
  });

  it("sends a raw string body as it is, and upper-cases the method", () => {
    const job = buildJob(
      { execute_at: NOW / 1000, request: { ...request, method: "put", body: "a=1" } },
      context,
    );
    expect(job.request).toMatchObject({ method: "PUT", body: "a=1" });
  });
});

describe("buildJob: bad input is refused, naming the field", () => {
  it("an invalid cron expression", () => {
    expect(refusal({ cron: "61 * * * *", request })).toEqual([
      { path: "cron", message: expect.stringMatching(/not a valid 5-field cron expression/) },
    ]);
    expect(paths({ cron: "* * * *", request })).toEqual(["cron"]);
    expect(paths({ cron: "0 * * * * *", request })).toEqual(["cron"]);
    expect(paths({ cron: "0 0 30 2 *", request })).toEqual(["cron"]);
  });

  it("a date in the past, beyond a minute of clock skew", () => {
    expect(refusal({ execute_at: NOW / 1000 - 61, request })).toEqual([
      { path: "execute_at", message: expect.stringMatching(/is in the past/) },
    ]);
    expect(paths({ execute_at: "2025-06-15T12:00:00Z", request })).toEqual(["execute_at"]);
    expect(() => buildJob({ execute_at: NOW / 1000 - 59, request }, context)).not.toThrow();
  });

  it("a date-time without a zone, or one that is no date", () => {
    expect(paths({ execute_at: "2026-05-01T09:00:00", request })).toEqual(["execute_at"]);
    expect(paths({ execute_at: "2026-05-01", request })).toEqual(["execute_at"]);
    expect(paths({ execute_at: "2026-13-45T09:00:00Z", request })).toEqual(["execute_at"]);
    expect(paths({ execute_at: -5, request })).toEqual(["execute_at"]);
    expect(paths({ execute_at: true, request })).toEqual(["execute_at"]);
  });

  it("a URL that is not http(s), or carries credentials", () => {
    expect(refusal({ execute_at: NOW / 1000, request: { url: "file:///etc/passwd" } })).toEqual([
      { path: "request.url", message: "must be an http(s) URL (got file)" },
    ]);
    expect(paths({ execute_at: NOW / 1000, request: { url: "ftp://x/y" } })).toEqual(["request.url"]);
    expect(paths({ execute_at: NOW / 1000, request: { url: "svc/hook" } })).toEqual(["request.url"]);
    expect(paths({ execute_at: NOW / 1000, request: { url: "http://u:p@svc.test/" } })).toEqual([
      "request.url",
    ]);
    expect(paths({ execute_at: NOW / 1000, request: {} })).toEqual(["request.url"]);
  });

  it("a body over 1 MiB", () => {
    const big = "x".repeat(MAX_BODY_BYTES + 1);
    expect(refusal({ execute_at: NOW / 1000, request: { ...request, body: big } })).toEqual([
      { path: "request.body", message: expect.stringMatching(/at most 1048576 \(1 MiB\)/) },
    ]);
    expect(paths({ execute_at: NOW / 1000, request: { ...request, body: { text: big } } })).toEqual([
      "request.body",
    ]);
    const justFits = "x".repeat(MAX_BODY_BYTES);
    expect(() =>
      buildJob({ execute_at: NOW / 1000, request: { ...request, body: justFits } }, context),
    ).not.toThrow();
  });

  it("unknown fields, at any depth", () => {
    expect(paths({ execute_at: NOW / 1000, request, timezone: "UTC" })).toEqual(["timezone"]);
    expect(paths({ execute_at: NOW / 1000, request: { ...request, query: {} } })).toEqual(["request.query"]);
    expect(paths({ execute_at: NOW / 1000, request, retry: { jitter: 1 } })).toEqual(["retry.jitter"]);
  });

  it("both or neither of execute_at and cron; both or neither of request and workload", () => {
    expect(refusal({ request })).toEqual([{ path: "execute_at", message: "is required (or cron)" }]);
    expect(paths({ execute_at: NOW / 1000, cron: "* * * * *", request })).toEqual(["execute_at"]);
    expect(paths({ execute_at: NOW / 1000 })).toEqual(["request"]);
    expect(paths({ execute_at: NOW / 1000, request, workload: { profile: "agent" } })).toEqual(["request"]);
  });

  it("fields of the wrong type or range", () => {
    const at = NOW / 1000;
    expect(paths({ execute_at: at, request: { ...request, timeout: 0 } })).toEqual(["request.timeout"]);
    expect(paths({ execute_at: at, request: { ...request, timeout: 1.5 } })).toEqual(["request.timeout"]);
    expect(paths({ execute_at: at, request: { ...request, headers: { A: 1 } } })).toEqual([
      "request.headers.A",
    ]);
    expect(paths({ execute_at: at, request: { ...request, headers: { A: "x\r\nB: y" } } })).toEqual([
      "request.headers.A",
    ]);
    expect(paths({ execute_at: at, request: { ...request, headers: { "Bad Name": "x" } } })).toEqual([
      "request.headers.Bad Name",
    ]);
    expect(paths({ execute_at: at, request: { ...request, headers: { Host: "evil" } } })).toEqual([
      "request.headers.Host",
    ]);
    expect(paths({ execute_at: at, request: { ...request, method: "TRACE" } })).toEqual(["request.method"]);
    expect(paths({ execute_at: at, request: { ...request, method: "GET", body: {} } })).toEqual([
      "request.body",
    ]);
    expect(paths({ execute_at: at, request, retry: { max_attempts: 0 } })).toEqual(["retry.max_attempts"]);
    expect(paths({ execute_at: at, request, retry: { backoff: [-1] } })).toEqual(["retry.backoff.0"]);
    expect(paths({ execute_at: at, request, idempotency_key: "" })).toEqual(["idempotency_key"]);
    expect(paths({ execute_at: at, request, metadata: [] })).toEqual(["metadata"]);
    expect(paths(null)).toEqual([""]);
  });

  it("a workload spec the kernel would refuse, or naming a profile the scheduler lacks", () => {
    const at = NOW / 1000;
    expect(paths({ execute_at: at, workload: { profile: "agent", workloadId: "w1" } })).toEqual([
      "workload.workloadId",
    ]);
    expect(paths({ execute_at: at, workload: { profile: "agent", env: { "A-B": "x" } } })).toEqual([
      "workload.env.A-B",
    ]);
    expect(refusal({ execute_at: at, workload: { profile: "gpu" } }, { profiles: ["agent"] })).toEqual([
      { path: "workload.profile", message: 'unknown profile "gpu" (configured: agent)' },
    ]);
  });

  it("names every problem at once", () => {
    expect(paths({ cron: "nope", request: { url: "gopher://x", timeout: 0 }, extra: 1 }).sort()).toEqual([
      "cron",
      "extra",
      "request.timeout",
      "request.url",
    ]);
  });
});

describe("redact", () => {
  it("replaces header values and workload env values, and nothing else", () => {
    const job = buildJob(
      {
        execute_at: NOW / 1000,
        request: { ...request, headers: { Authorization: "Bearer x" }, body: { k: "v" } },
      },
      context,
    );
    const view = redact(job);
    expect(view.request).toEqual({ ...job.request, headers: { Authorization: "[redacted]" } });
    expect(job.request?.headers.Authorization).toBe("Bearer x");
  });
});
