/**
 * One callback POST: the body as JSON, the outbox's headers, a deadline, and the receiver's
 * status code as the answer (or a rejection when there is none: refused, reset, timed out).
 * Connections are kept alive per receiver, so a steady stream of callbacks to one control
 * plane costs one connection, not one per event.
 * @module
 */
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";

/** Sends one callback; resolves with the receiver's HTTP status. */
export type CallbackPoster = (
  url: URL,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number,
) => Promise<number>;

/** A poster over node:http and node:https with kept-alive connections; `destroy()` closes them. */
export function createCallbackPoster(options: { maxSocketsPerOrigin: number }): {
  post: CallbackPoster;
  destroy(): void;
} {
  const agentOptions = { keepAlive: true, maxSockets: options.maxSocketsPerOrigin };
  const http = new HttpAgent(agentOptions);
  const https = new HttpsAgent(agentOptions);
  const post: CallbackPoster = (url, body, headers, timeoutMs) =>
    new Promise<number>((resolve, reject) => {
      const secure = url.protocol === "https:";
      const req = (secure ? httpsRequest : httpRequest)(url, {
        method: "POST",
        agent: secure ? https : http,
        headers: {
          ...headers,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        },
        timeout: timeoutMs,
      });
      req.once("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.once("error", reject);
      req.once("response", (res) => {
        // The answer is the status; the body is read and dropped so the connection can be reused.
        res.resume();
        res.once("error", () => {});
        resolve(res.statusCode ?? 0);
      });
      req.end(body);
    });
  return {
    post,
    destroy() {
      http.destroy();
      https.destroy();
    },
  };
}
