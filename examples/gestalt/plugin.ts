/**
 * A hosted plugin: a gRPC server on the unix socket the runtime names in
 * GESTALT_PLUGIN_SOCKET, serving the standard health service and the example Greeter.
 * It stops cleanly on SIGTERM (the runtime's stop signal).
 */
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { GreeterService } from "./greeter.js";
import { HealthService } from "./health.js";

const socket = process.env.GESTALT_PLUGIN_SOCKET;
const name = process.env.GESTALT_PLUGIN_NAME ?? "plugin";
if (!socket) throw new Error("GESTALT_PLUGIN_SOCKET is not set: start me through a runtime provider");

const server = new Server();
server.addService(HealthService, {
  check: (_call: unknown, callback: (e: null, r: { status: string }) => void) =>
    callback(null, { status: "SERVING" }),
  watch: () => {},
});
server.addService(GreeterService, {
  greet: (call: { request: { name: string } }, callback: (e: null, r: { message: string }) => void) =>
    callback(null, { message: `Hello, ${call.request.name}, from plugin "${name}" (pid ${process.pid})` }),
});
server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (error) => {
  if (error) throw error;
  console.log(`${name} serving on ${socket}`);
});
process.once("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
