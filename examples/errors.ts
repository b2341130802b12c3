/**
 * Matching errors on their stable `code`.  Run: npx tsx examples/errors.ts
 */
import { createRuntimeKernel, isRuntimeKernelError } from "runtime-kernel";
import { FakeBackend } from "runtime-kernel/testing";

const fake = new FakeBackend();
const kernel = createRuntimeKernel({
  backend: fake,
  profiles: { agent: { runnable: { command: ["agent"] } } },
  ownerQuota: 1,
});

async function attempt(label: string, call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
    console.log(`${label}: ok`);
  } catch (error) {
    if (isRuntimeKernelError(error, "INVALID_SPEC")) {
      console.log(`${label}: INVALID_SPEC`, error.issues); // [{ path, message }]
    } else if (isRuntimeKernelError(error)) {
      console.log(`${label}: ${error.code} (retryable: ${error.retryable}) ${error.message}`);
    } else throw error;
  }
}

await attempt("bad spec", () =>
  kernel.create({ workloadId: "Bad_Id", profile: "agent", env: { "1X": "y" } }),
);
await attempt("first", () => kernel.create({ workloadId: "a1", profile: "agent", owner: "alice" }));
await attempt("over quota", () => kernel.create({ workloadId: "a2", profile: "agent", owner: "alice" }));
await attempt("someone else's id", () => kernel.create({ workloadId: "a1", profile: "agent", owner: "bob" }));
fake.behave("broken", { startError: "image not found" });
await attempt("start failure", () => kernel.create({ workloadId: "broken", profile: "agent" }));
await attempt("unknown id", () => kernel.stop("nope"));
await kernel.shutdown();
await attempt("after shutdown", () => kernel.create({ workloadId: "late", profile: "agent" }));
