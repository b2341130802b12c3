/**
 * `runtime-kernel/http`: runtime.v1 over HTTP/JSON, exactly as Vexa's control plane speaks
 * it (`POST /workloads`, `GET /workloads[/{id}]`, `POST /workloads/{id}/stop`, `DELETE
 * /workloads/{id}`, `GET /health`), with durable, ordered, optionally signed callbacks to each
 * workload's `callbackUrl`, and `GET /openapi.json`. {@link createRuntimeHttpHandler} is a
 * plain node:http handler; {@link serveRuntimeHttp} puts it on a listener.
 * @module
 */

export type {
  BackendKind,
  WireError,
  WireRuntimeEvent,
  WireStopReason,
  WireWorkloadSpec,
  WireWorkloadStatus,
} from "./contract.js";
export {
  BACKEND_KINDS,
  errorSchema,
  healthSchema,
  runtimeEventSchema,
  stopRequestSchema,
  WIRE_STOP_REASONS,
  workloadSpecSchema,
  workloadStatusSchema,
} from "./contract.js";
export { STOP_REASON_TO_WIRE } from "./convert.js";
export type {
  HttpLogEntry,
  RuntimeHttpHandler,
  RuntimeHttpHandlerEvents,
  RuntimeHttpHandlerOptions,
} from "./handler.js";
export { createRuntimeHttpHandler, TRACE_HEADER } from "./handler.js";
export type { CallbackLogEntry, CallbackOptions } from "./outbox.js";
export type { HealthCheck } from "./routes/health.js";
export type { RuntimeHttpServer, ServeRuntimeHttpOptions } from "./serve.js";
export { DEFAULT_HTTP_ADDRESS, serveRuntimeHttp } from "./serve.js";
export type { VerifyCallbackOptions } from "./signature.js";
export { CALLBACK_HEADERS, signCallback, verifyCallbackSignature } from "./signature.js";
