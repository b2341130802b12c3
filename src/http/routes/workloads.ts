/**
 * The runtime.v1 workload routes: create, list, get, stop, destroy.
 * @module
 */
import { z } from "zod";
import { type RuntimeKernel, WorkloadNotFoundError, type WorkloadStatus } from "../../index.js";
import type { KernelCallbacks } from "../callbacks.js";
import {
  type BackendKind,
  errorSchema,
  stopRequestSchema,
  workloadSpecSchema,
  workloadStatusSchema,
} from "../contract.js";
import { specFromWire, statusToWire, stopReasonFromWire } from "../convert.js";
import { type RouteGroup, route } from "../router.js";

/** What the workload routes act on. */
export interface WorkloadRoutesContext {
  kernel: RuntimeKernel;
  callbacks: KernelCallbacks;
  /** This kernel's backend, as the contract names it. */
  backend: BackendKind;
  /** What statuses report as `node`. */
  node?: string;
  /** The env variable naming a workload's owner (quotas), or false. */
  ownerEnv: string | false;
}

const error = (description: string) => ({ description, schema: errorSchema });
const notFound = error("No workload with that id (never created, or destroyed).");

/** The workload routes of runtime.v1. */
export function workloadRoutes(context: WorkloadRoutesContext): RouteGroup {
  const { kernel, callbacks, backend } = context;
  const wire = (status: WorkloadStatus) => statusToWire(status, { backend, node: context.node });
  const known = (id: string): WorkloadStatus => {
    const status = kernel.get(id);
    if (status === undefined) throw new WorkloadNotFoundError(id);
    return status;
  };
  return [
    route({
      method: "POST",
      path: "/workloads",
      operationId: "createWorkload",
      summary:
        "Starts a workload and answers once it runs. Idempotent on workloadId: for a live workload it answers its status, starting nothing.",
      body: { schema: workloadSpecSchema, required: true },
      responses: {
        201: { description: "The workload runs (or already ran).", schema: workloadStatusSchema },
        400: error(
          "The spec is invalid (each bad field named), the profile unknown, or the backend not this kernel's.",
        ),
        409: error("The workloadId belongs to another owner."),
        429: error("The owner's quota is used up. Nothing was started."),
        502: error("The backend could not start it. Its status and events say so too."),
        503: error("The kernel is shutting down, or its backend is unreachable."),
      },
      handle: async ({ body, traceId }) => {
        const spec = specFromWire(body, { backend, ownerEnv: context.ownerEnv, traceId });
        const status = await callbacks.creating(spec.workloadId, body.callbackUrl, traceId, () =>
          kernel.create(spec),
        );
        return { status: 201, body: wire(status) };
      },
    }),
    route({
      method: "GET",
      path: "/workloads",
      operationId: "listWorkloads",
      summary: "Every workload the kernel knows.",
      responses: { 200: { description: "The statuses.", schema: z.array(workloadStatusSchema) } },
      handle: () => ({ status: 200, body: kernel.list().map(wire) }),
    }),
    route({
      method: "GET",
      path: "/workloads/{workloadId}",
      operationId: "getWorkload",
      summary: "One workload's status.",
      responses: { 200: { description: "Its status.", schema: workloadStatusSchema }, 404: notFound },
      handle: ({ params }) => ({ status: 200, body: wire(known(params.workloadId as string)) }),
    }),
    route({
      method: "POST",
      path: "/workloads/{workloadId}/stop",
      operationId: "stopWorkload",
      summary: "Stops a workload (terminate, then kill after its grace) and answers once it has stopped.",
      body: { schema: stopRequestSchema, required: false },
      responses: {
        200: { description: "It has stopped.", schema: workloadStatusSchema },
        400: error("A reason that a caller cannot ask for."),
        404: notFound,
      },
      handle: async ({ params, body }) => {
        const reason = stopReasonFromWire(body?.reason);
        const id = params.workloadId as string;
        known(id);
        return { status: 200, body: wire(await kernel.stop(id, { reason })) };
      },
    }),
    route({
      method: "DELETE",
      path: "/workloads/{workloadId}",
      operationId: "destroyWorkload",
      summary:
        "Stops the workload if it runs, reclaims everything it held, and answers once that is confirmed.",
      responses: {
        200: {
          description: "It is destroyed: its last status, in state destroyed.",
          schema: workloadStatusSchema,
        },
        404: notFound,
        502: error("The backend could not confirm the cleanup; the kernel retries it."),
      },
      handle: async ({ params }) => {
        const id = params.workloadId as string;
        let last = known(id);
        if (last.state !== "stopped") last = await kernel.stop(id);
        await kernel.destroy(id);
        return { status: 200, body: { ...wire(last), state: "destroyed" } };
      },
    }),
  ];
}
