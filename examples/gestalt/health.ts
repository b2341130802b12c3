/**
 * The standard gRPC health service (grpc.health.v1), loaded from its .proto with
 * @grpc/grpc-js and @grpc/proto-loader, as any gRPC application loads a service: the plugin
 * serves it, the host calls it. (In your project: `npm install @grpc/grpc-js
 * @grpc/proto-loader`, and your own copy of health.proto.)
 */
import { fileURLToPath } from "node:url";
import {
  type Client,
  type GrpcObject,
  loadPackageDefinition,
  type ServiceClientConstructor,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

const definition = loadSync(
  fileURLToPath(new URL("../../proto/grpc/health/v1/health.proto", import.meta.url)),
  {
    enums: String,
  },
);
const { v1 } = (loadPackageDefinition(definition).grpc as GrpcObject).health as GrpcObject as {
  v1: { Health: ServiceClientConstructor };
};

/** A client of the health service. */
export interface HealthClient extends Client {
  check(
    request: { service: string },
    callback: (error: ServiceError | null, response: { status: string }) => void,
  ): void;
}

/** The health client's constructor. */
export const HealthClient = v1.Health as unknown as new (
  ...args: ConstructorParameters<ServiceClientConstructor>
) => HealthClient;
/** The health service's definition, for `server.addService`. */
export const HealthService = v1.Health.service;
