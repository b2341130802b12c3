/**
 * runtime.v1 over HTTP end to end: a kernel behind the HTTP surface, a control plane driving
 * it with plain `fetch`, and a receiver that verifies each signed callback and drops
 * duplicates by event id.
 *
 *   npx tsx examples/http.ts
 *
 * It runs on the in-memory fake backend, so it needs nothing installed; with
 * `runtime-kernel serve --http 127.0.0.1:8090` the same requests drive real workloads.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createRuntimeKernel } from "runtime-kernel";
// In an application: `from "runtime-kernel"`, `"runtime-kernel/http"` and `"runtime-kernel/testing"`.
import {
  CALLBACK_HEADERS,
  serveRuntimeHttp,
  verifyCallbackSignature,
  type WireError,
  type WireWorkloadStatus,
} from "runtime-kernel/http";
import { FakeBackend } from "runtime-kernel/testing";

const secret = "read-me-from-a-file";

// ── the receiver: what the control plane mounts at its callbackUrl ──
const seen = new Set<string>();
const receiver = createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    if (!verifyCallbackSignature({ secret, body, headers: req.headers })) return res.writeHead(401).end();
    const id = req.headers[CALLBACK_HEADERS.eventId] as string;
    if (!seen.has(id)) {
      seen.add(id);
      const event = JSON.parse(body);
      console.log(
        `callback: ${event.workloadId} ${event.state}${event.stopReason ? ` (${event.stopReason})` : ""}`,
      );
    }
    res.writeHead(204).end();
  });
});
await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const callbackUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/runtime/callback`;

// ── the kernel side ──
const kernel = createRuntimeKernel({
  backend: new FakeBackend(),
  profiles: { agent: { runnable: { command: ["agent"] } } },
});
const server = await serveRuntimeHttp(kernel, {
  address: "127.0.0.1:0",
  backend: "process", // the fake has no name in the contract: say which one it stands for
  callbacks: { signingSecret: secret },
});
console.log(`serving runtime.v1 over HTTP on ${server.url}`);

// ── the control plane ──
const api = async (method: string, path: string, body?: unknown) => {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { "content-type": "application/json", "x-trace-id": "example-1" },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  // Statuses as the contract has them; an error answer is { detail, code, issues? }.
  return {
    status: response.status,
    body: (await response.json()) as WireWorkloadStatus & Partial<WireError>,
  };
};
const spec = { workloadId: "agent-1", profile: "agent", env: { TASK: "summarise" }, callbackUrl };
const created = await api("POST", "/workloads", spec);
console.log(`POST /workloads -> ${created.status} ${created.body.state}`);
const again = await api("POST", "/workloads", spec);
console.log(`POST /workloads again -> ${again.status} ${again.body.state} (idempotent: nothing new started)`);
const refused = await api("POST", "/workloads", { ...spec, workloadId: "Agent_2", env: { N: 1 } });
console.log(`POST /workloads bad -> ${refused.status} ${refused.body.issues?.map((i) => i.path).join(", ")}`);
const stopped = await api("POST", "/workloads/agent-1/stop", { reason: "stopped" });
console.log(
  `POST /workloads/agent-1/stop -> ${stopped.status} ${stopped.body.state} (${stopped.body.stopReason})`,
);
const destroyed = await api("DELETE", "/workloads/agent-1");
console.log(`DELETE /workloads/agent-1 -> ${destroyed.status} ${destroyed.body.state}`);

await server.handler.flushCallbacks(5_000);
await server.close();
receiver.close();
