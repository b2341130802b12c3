/**
 * Requests that cannot be decoded are the caller's mistake, and get the same answer as any
 * other bad input: `INVALID_SPEC` (INVALID_ARGUMENT) naming the field, not grpc-js's bare
 * INTERNAL "Error deserializing request". The one such mistake a well-formed message can
 * make is a 64-bit integer above 2^53, which JavaScript numbers cannot hold exactly.
 *
 * {@link checkedDecoding} wraps a service definition's request decoders. A request that fails
 * to decode reaches the handler as a {@link DecodeFailure}, and the handler's wrapper throws
 * its error, so it travels through the one error boundary like every other failure.
 * @module
 */
import { BinaryReader } from "@bufbuild/protobuf/wire";
import type { ServiceDefinition } from "@grpc/grpc-js";
import { InvalidSpecError } from "../errors.js";
import { boundText } from "./status.js";

const FAILURE = Symbol("runtime-kernel.decode-failure");

/** What a handler receives instead of a request that could not be decoded. */
export interface DecodeFailure {
  readonly [FAILURE]: InvalidSpecError;
}

/** The error of a request that failed to decode, or undefined for a decoded request. */
export function decodeFailureOf(request: unknown): InvalidSpecError | undefined {
  return typeof request === "object" && request !== null && FAILURE in request
    ? (request as DecodeFailure)[FAILURE]
    : undefined;
}

class TooLarge extends Error {
  constructor(readonly field: number) {
    super("a 64-bit integer above 2^53 - 1");
  }
}

/**
 * A reader that knows which field it reads: generated decoders read a field's tag with
 * `uint32()` right before its value, so the last tag is the field of a failing `uint64()`.
 */
class FieldTrackingReader extends BinaryReader {
  #lastVarint32 = 0;
  constructor(bytes: Uint8Array) {
    super(bytes);
    // `uint32` is an instance property of BinaryReader, not a method: wrap it in place.
    const read = this.uint32;
    this.uint32 = () => {
      this.#lastVarint32 = read.call(this);
      return this.#lastVarint32;
    };
  }
  override uint64(): bigint | string {
    const value = super.uint64();
    if (BigInt(value) > BigInt(Number.MAX_SAFE_INTEGER)) throw new TooLarge(this.#lastVarint32 >>> 3);
    return value;
  }
}

/**
 * `service` with request decoders that never throw. `uint64Fields` names, per method, the
 * request's 64-bit fields by field number (`{ stop: { 3: "graceMs" } }`), so a value above
 * 2^53 is refused naming its field.
 */
export function checkedDecoding<S extends ServiceDefinition>(
  service: S,
  uint64Fields: { [M in keyof S]?: Record<number, string> },
): S {
  const out: Record<string, unknown> = {};
  for (const [method, definition] of Object.entries(service)) {
    const decode = definition.requestDeserialize;
    const fields = uint64Fields[method] ?? {};
    out[method] = {
      ...definition,
      requestDeserialize: (buffer: Buffer) => {
        try {
          // Generated decoders take a BinaryReader as well as bytes.
          return decode(new FieldTrackingReader(buffer) as unknown as Buffer);
        } catch (error) {
          const issue =
            error instanceof TooLarge
              ? { path: fields[error.field] ?? `field ${error.field}`, message: "must be at most 2^53 - 1" }
              : {
                  path: "request",
                  message: `could not be decoded: ${boundText((error as Error)?.message ?? String(error), 200)}`,
                };
          const failure: DecodeFailure = { [FAILURE]: new InvalidSpecError([issue], { subject: "request" }) };
          return failure;
        }
      },
    };
  }
  return out as S;
}
