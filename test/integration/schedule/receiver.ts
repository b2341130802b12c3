/**
 * An HTTP receiver on loopback that records every call and answers as the test says.
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** Epoch ms of arrival. */
  at: number;
}

export interface Receiver {
  url: string;
  calls: Received[];
  /** Sets the status (or a handler) for the calls that follow: default 200. */
  answer(status: number | ((call: Received) => number | "hang")): void;
  /** Resolves once `n` calls have arrived in all. */
  received(n: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const calls: Received[] = [];
  let answer: number | ((call: Received) => number | "hang") = 200;
  const waiters: Array<{ n: number; resolve: (calls: Received[]) => void }> = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const call: Received = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        at: Date.now(),
      };
      calls.push(call);
      for (const w of waiters.filter((w) => calls.length >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(calls);
      }
      const status = typeof answer === "function" ? answer(call) : answer;
      if (status === "hang") return;
      res.writeHead(
        status,
        status >= 300 && status < 400 ? { location: "http://127.0.0.1:1/elsewhere" } : {},
      );
      res.end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    answer: (a) => {
      answer = a;
    },
    received: (n) =>
      calls.length >= n ? Promise.resolve(calls) : new Promise((resolve) => waiters.push({ n, resolve })),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
