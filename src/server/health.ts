/**
 * The standard grpc.health.v1 service, so grpc_health_probe, Kubernetes gRPC probes and
 * load balancers can tell whether a runtime-kernel server is serving. It answers without
 * a bearer token: it reveals nothing but SERVING / NOT_SERVING.
 * @module
 */
import type { ServerUnaryCall, ServerWritableStream, sendUnaryData } from "@grpc/grpc-js";
import {
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthServer,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health.js";
import { decodeFailureOf } from "../grpc/decode.js";
import { boundText, GrpcStatus, toServiceStatus } from "../grpc/status.js";

/** Serving statuses by service name (`""` is the server as a whole), with watchers told of each change. */
export class HealthRegistry {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #watchers = new Set<{
    service: string;
    call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>;
  }>();

  constructor(services: readonly string[]) {
    for (const service of ["", ...services]) this.#statuses.set(service, ServingStatus.SERVING);
  }

  /** Sets every service's status (NOT_SERVING while the server drains) and tells the watchers. */
  setAll(status: ServingStatus): void {
    for (const service of this.#statuses.keys()) this.#statuses.set(service, status);
    for (const watcher of this.#watchers) {
      if (this.#statuses.has(watcher.service)) watcher.call.write({ status });
    }
  }

  /** Ends every Watch stream (they would otherwise hold the server open at shutdown). */
  endWatches(): void {
    for (const watcher of this.#watchers) watcher.call.end();
    this.#watchers.clear();
  }

  /** The grpc-js implementation of grpc.health.v1.Health. */
  implementation(): HealthServer {
    return {
      check: (
        call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
        callback: sendUnaryData<HealthCheckResponse>,
      ) => {
        const undecodable = decodeFailureOf(call.request);
        if (undecodable) return callback(toServiceStatus(undecodable));
        const status = this.#statuses.get(call.request.service);
        if (status === undefined) {
          const name = boundText(call.request.service, 256);
          callback({ code: GrpcStatus.NOT_FOUND, details: `unknown service "${name}"` });
          return;
        }
        callback(null, { status });
      },
      watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        const undecodable = decodeFailureOf(call.request);
        if (undecodable) return void call.emit("error", toServiceStatus(undecodable));
        const watcher = { service: call.request.service, call };
        call.write({ status: this.#statuses.get(watcher.service) ?? ServingStatus.SERVICE_UNKNOWN });
        this.#watchers.add(watcher);
        const forget = () => this.#watchers.delete(watcher);
        call.on("cancelled", forget);
        call.on("finish", forget);
      },
    };
  }
}
