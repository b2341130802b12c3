import { type ChildProcess, spawn } from "node:child_process";
import { connect } from "node:net";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * The admin view served by a real host process (test/fixtures/gestalt/admin-server.ts),
 * sent request targets byte for byte over a raw socket, as a hostile client would.
 */
const ROOT = resolve(import.meta.dirname, "../../..");
let server: ChildProcess;
let port: number;
let output = "";

const alive = () => server.exitCode === null && server.signalCode === null;

/** Sends `GET <target>` as written and resolves with the status and body of the answer. */
function get(target: string, method = "GET"): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    socket.on("data", (chunk: Buffer) => (answer += chunk.toString("utf8")));
    socket.on("error", fail);
    socket.on("end", () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
      done({ status, body: answer.slice(answer.indexOf("\r\n\r\n") + 4) });
    });
    socket.end(`${method} ${target} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n`);
  });
}

beforeAll(async () => {
  server = spawn(
    process.execPath,
    ["--import", import.meta.resolve("tsx"), join(ROOT, "test/fixtures/gestalt/admin-server.ts")],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  server.stderr!.on("data", (c: Buffer) => (output += c));
  port = await new Promise<number>((ready, fail) => {
    server.stdout!.on("data", (c: Buffer) => {
      output += c;
      const m = /listening (\d+)/.exec(output);
      if (m) ready(Number(m[1]));
    });
    server.on("close", (code) => fail(new Error(`admin server exited with ${code}:\n${output}`)));
  });
}, 60_000);

afterAll(async () => {
  if (server && alive()) {
    const closed = new Promise((r) => server.once("close", r));
    server.kill("SIGTERM");
    await closed;
  }
});

const base = "/admin/api/v1/runtime/providers";

describe("the Gestalt admin handler under hostile requests", () => {
  it.each([
    ["a truncated percent-escape", `${base}/%E0%A4%A/sessions`, 400],
    ["a lone percent sign", `${base}/%/sessions`, 400],
    ["an overlong UTF-8 escape", `${base}/%C0%AF/sessions`, 400],
    ["a lone surrogate escape", `${base}/%ED%A0%80/sessions`, 400],
    ["the asterisk form", "*", 400],
    ["an absolute form with a broken host", `http://[/${base}`, 404],
    ["an absolute form", `http://admin${base}`, 200],
    ["a query and a fragment", `${base}?x=%E0%A4%A#y`, 200],
    ["an encoded slash in the provider name", `${base}/lo%2Fcal/sessions`, 404],
    ["a host that throws before it returns a promise", `${base}/throws-at-once/sessions`, 500],
    ["a view that cannot be serialised", `${base}/unserialisable/sessions`, 500],
    ["a provider name of 10,000 characters", `${base}/${"x".repeat(10_000)}/sessions`, 404],
  ])("answers %s and keeps serving", async (_, target, status) => {
    const answer = await get(target);
    expect(answer.status, answer.body).toBe(status);
    expect(answer.body.length).toBeLessThan(4_096);
    expect(JSON.parse(answer.body)).toBeTypeOf("object");
    expect(alive(), output).toBe(true);
  });

  it("still answers the routes it serves, and nothing else, after all that", async () => {
    expect((await get(base)).status).toBe(200);
    expect(JSON.parse((await get(`${base}/local/sessions`)).body)).toEqual([
      { id: "s1", state: "running", plugin: "support" },
    ]);
    expect((await get(`${base}/nope/sessions`)).status).toBe(404);
    expect((await get(base, "POST")).status).toBe(405);
    expect(alive(), output).toBe(true);
  });
});
