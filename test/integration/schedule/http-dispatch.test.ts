import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createScheduler,
  IDEMPOTENCY_HEADER,
  openJournalStore,
  type ScheduleJob,
  type Scheduler,
} from "../../../src/schedule/index.js";
import { ManualClock } from "../../../src/testing/index.js";
import { tempDir } from "../../unit/schedule/helpers.js";
import { type Receiver, startReceiver } from "./receiver.js";

const T0 = Date.UTC(2026, 0, 1);
let receiver: Receiver;
let scheduler: Scheduler;
let clock: ManualClock;

beforeEach(async () => {
  receiver = await startReceiver();
  clock = new ManualClock(T0);
  scheduler = createScheduler({
    store: await openJournalStore({ path: join(tempDir(), "schedule.journal"), clock }),
    clock,
  });
  await scheduler.ready;
});

afterEach(async () => {
  await scheduler.close();
  await receiver.close();
});

/** Schedules a job due now, fires it through the real HTTP dispatch, and returns it as recorded. */
async function fire(request: Record<string, unknown>, retry = {}): Promise<ScheduleJob> {
  const job = await scheduler.schedule({ execute_at: T0 / 1000, request: request as never, retry });
  await scheduler.tick();
  return (await scheduler.get(job.job_id)) as ScheduleJob;
}

describe("httpDispatch: a receiver on loopback gets the calls", () => {
  it("sends the method, URL, headers, JSON body and the idempotency key", async () => {
    const job = await fire({
      method: "PUT",
      url: `${receiver.url}/runtime/dispatch?meeting=42`,
      headers: { "X-Internal-Secret": "s3cret" },
      body: { task: "spawn-bot", meetingId: 42 },
    });
    expect(job).toMatchObject({ status: "completed", result: { status_code: 200 } });
    const [call] = receiver.calls;
    expect(call).toMatchObject({ method: "PUT", path: "/runtime/dispatch?meeting=42" });
    expect(call!.headers["x-internal-secret"]).toBe("s3cret");
    expect(call!.headers["content-type"]).toBe("application/json");
    expect(call!.headers["idempotency-key"]).toBe(`${job.job_id}:${T0 / 1000}`);
    expect(JSON.parse(call!.body)).toEqual({ task: "spawn-bot", meetingId: 42 });
    expect(IDEMPOTENCY_HEADER.toLowerCase()).toBe("idempotency-key");
  });

  it("sends a string body as it is, keeps the job's own Content-Type and Idempotency-Key, and no body when there is none", async () => {
    await fire({
      url: `${receiver.url}/a`,
      headers: { "content-type": "text/plain", "Idempotency-Key": "mine" },
      body: "a=1&b=2",
    });
    await fire({ url: `${receiver.url}/b` });
    expect(receiver.calls[0]).toMatchObject({ body: "a=1&b=2" });
    expect(receiver.calls[0]!.headers).toMatchObject({
      "content-type": "text/plain",
      "idempotency-key": "mine",
    });
    expect(receiver.calls[1]).toMatchObject({ method: "POST", body: "" });
    expect(receiver.calls[1]!.headers["content-type"]).toBeUndefined();
  });

  it("retries a 5xx with the same idempotency key, and completes when the receiver recovers", async () => {
    receiver.answer((call) => (receiver.calls.indexOf(call) === 0 ? 503 : 200));
    const first = await fire({ url: `${receiver.url}/flaky?token=t0k3n` }, { backoff: [10] });
    expect(first).toMatchObject({ status: "pending", retry: { attempt: 1 } });
    expect(first.error).toBe(`POST ${receiver.url}/flaky answered 503`);
    await clock.advance(10_000);
    await scheduler.tick();
    expect((await scheduler.get(first.job_id))?.status).toBe("completed");
    expect(receiver.calls).toHaveLength(2);
    expect(receiver.calls[1]!.headers["idempotency-key"]).toBe(receiver.calls[0]!.headers["idempotency-key"]);
  });

  it("completes a 4xx without retrying, with the status and reason", async () => {
    receiver.answer(422);
    const job = await fire({ url: `${receiver.url}/bad` });
    expect(job).toMatchObject({
      status: "completed",
      result: { status_code: 422, error: "Unprocessable Entity" },
    });
    await clock.advance(3_600_000);
    await scheduler.tick();
    expect(receiver.calls).toHaveLength(1);
  });

  it("does not follow a redirect", async () => {
    receiver.answer(307);
    const job = await fire({ url: `${receiver.url}/moved` });
    expect(job).toMatchObject({ status: "completed", result: { status_code: 307 } });
    expect(receiver.calls).toHaveLength(1);
  });

  it("retries when nothing listens, saying so", async () => {
    const gone = receiver.url;
    await receiver.close();
    const job = await fire({ url: `${gone}/x` });
    expect(job.status).toBe("pending");
    expect(job.error).toMatch(new RegExp(`^POST ${gone}/x: .*ECONNREFUSED`));
    receiver = await startReceiver();
  });

  it("abandons a call that gets no answer within its timeout, and retries it", async () => {
    receiver.answer(() => "hang");
    const job = await fire({ url: `${receiver.url}/slow`, timeout: 1 }, { max_attempts: 1 });
    expect(job).toMatchObject({ status: "failed", error: `POST ${receiver.url}/slow: no answer within 1 s` });
  });
});
