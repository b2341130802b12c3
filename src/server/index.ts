/**
 * `runtime-kernel/server`: the runtime.v1 gRPC service. {@link serveRuntimeKernel} puts a
 * kernel behind it, so a control plane in any language can drive it;
 * {@link createRuntimeClient} drives one from TypeScript with the kernel's own types.
 * The only entry of the package that loads `@grpc/grpc-js`.
 * @module
 */

export type { ServiceAddress } from "./address.js";
export { ADDRESS_ENV, defaultAddress, defaultSocketPath, parseAddress } from "./address.js";
export type {
  ClientTlsOptions,
  EventsOptions,
  EventsResumeOptions,
  RuntimeCallOptions,
  RuntimeClient,
  RuntimeClientOptions,
  ServingStatus,
} from "./client.js";
export { createRuntimeClient } from "./client.js";
export type { GrpcStatusCode, ReceivedStatus, WireError } from "./errors.js";
export {
  ERROR_METADATA,
  fromWireError,
  GrpcStatus,
  grpcStatusForCode,
  grpcStatusName,
  RuntimeServiceError,
  toWireError,
} from "./errors.js";
export { EVENTS_EPOCH_HEADER, EVENTS_SEQ_HEADER } from "./event-stream.js";
export type {
  CloseServerOptions,
  KernelOnClose,
  RuntimeKernelServer,
  ServeRuntimeKernelOptions,
  ServerTlsOptions,
} from "./serve.js";
export { RUNTIME_SERVICE_NAME, serveRuntimeKernel } from "./serve.js";
