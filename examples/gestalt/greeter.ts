/**
 * The Greeter service the example plugin serves, with JSON messages so the example needs
 * no .proto of its own: `gestalt.example.Greeter/Greet({ name }) -> { message }`.
 */
import { type Client, makeGenericClientConstructor, type ServiceDefinition } from "@grpc/grpc-js";

const json = {
  serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
  deserialize: (buffer: Buffer) => JSON.parse(buffer.toString("utf8")),
};

export const GreeterService = {
  greet: {
    path: "/gestalt.example.Greeter/Greet",
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} satisfies ServiceDefinition;

export interface GreeterClient extends Client {
  greet(
    request: { name: string },
    callback: (error: Error | null, response: { message: string }) => void,
  ): void;
}

export const GreeterClient = makeGenericClientConstructor(
  GreeterService,
  "gestalt.example.Greeter",
) as unknown as new (
  ...args: ConstructorParameters<ReturnType<typeof makeGenericClientConstructor>>
) => GreeterClient;
