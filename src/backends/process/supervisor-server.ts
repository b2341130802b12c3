/**
 * The supervisor's side of its socket: the kernels connected, one JSON request per line in,
 * replies batched per client, events broadcast to all. It owns the connections and their
 * outboxes; it must not touch runs, the journal or log files: it asks its owner to handle
 * each request and to put on record what a reply tells. Part of the supervisor's program
 * (see `supervisor.ts`): each function reaches Node only through its parameters.
 * @module
 */
import type * as NetModule from "node:net";
import type { Request, ServerMessage, WireError } from "./protocol.js";

/** What a reply can be bound to: a start's run, refused after the reply was queued. */
export interface Refusable {
  refusal?: WireError | undefined;
}

/** What {@link createServerState} needs. */
export interface ServerOptions {
  /** Answers one request: a result, a promise of one, or a throw (its error goes back). */
  handle(socket: NetModule.Socket, request: Request): unknown;
  /** The run a start's reply is bound to, if any (its refusal replaces the reply). */
  startedRun(runId: string): Refusable | undefined;
  /** Puts on record what is about to be told: called before any reply leaves. */
  beforeReply(): void;
  /** A client connected, a request came in, a client left. */
  connected(): void;
  activity(): void;
  disconnected(): void;
  diag(message: string): void;
}

/** The connections of one supervisor. */
export interface ServerState {
  options: ServerOptions;
  clients: Set<NetModule.Socket>;
  /**
   * Replies wait in an outbox per client, written at once after a chunk of requests. The
   * reply to a start holds its run: if the start line could not be written, the run was
   * refused and the reply says so instead.
   */
  outboxes: Map<NetModule.Socket, Array<{ message: ServerMessage; run?: Refusable | undefined }>>;
}

export function createServerState(options: ServerOptions): ServerState {
  return { options, clients: new Set(), outboxes: new Map() };
}

/** Takes a new connection: reads its requests line by line and answers them. */
export function acceptConnection(state: ServerState, socket: NetModule.Socket): void {
  state.clients.add(socket);
  state.options.connected();
  let buffer = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    buffer += chunk;
    let newline = buffer.indexOf("\n");
    if (newline < 0) return;
    let start = 0;
    while (newline >= 0) {
      answerLine(state, socket, buffer.slice(start, newline));
      start = newline + 1;
      newline = buffer.indexOf("\n", start);
    }
    buffer = buffer.slice(start);
    // One write for all the replies to one chunk of requests.
    flushOutbox(state, socket);
  });
  socket.on("error", () => socket.destroy());
  socket.on("close", () => {
    state.clients.delete(socket);
    state.outboxes.delete(socket);
    state.options.disconnected();
  });
}

/** Answers one line: what is not a request is dropped (and noted), never answered. */
export function answerLine(state: ServerState, socket: NetModule.Socket, line: string): void {
  const { options } = state;
  options.activity();
  let request: Request;
  try {
    request = JSON.parse(line);
  } catch {
    options.diag("dropped a line that is not JSON");
    return;
  }
  if (typeof request !== "object" || request === null || typeof request.id !== "number") {
    options.diag("dropped a line that is not a request");
    return;
  }
  let result: unknown;
  try {
    result = options.handle(socket, request);
  } catch (error) {
    queueReply(state, socket, { id: request.id, ok: false, error: toWireError(error) });
    return;
  }
  if (result instanceof Promise) {
    result.then(
      (value) =>
        queueReply(
          state,
          socket,
          { id: request.id, ok: true, result: value },
          request.op === "start" ? options.startedRun(request.spec.runId) : undefined,
        ),
      (error) => queueReply(state, socket, { id: request.id, ok: false, error: toWireError(error) }),
    );
  } else {
    queueReply(
      state,
      socket,
      { id: request.id, ok: true, result },
      request.op === "start" ? options.startedRun(request.spec.runId) : undefined,
    );
  }
}

/** Queues a reply; the outbox is written after the current chunk, or on the next turn. */
export function queueReply(
  state: ServerState,
  socket: NetModule.Socket,
  message: ServerMessage,
  run?: Refusable,
): void {
  let outbox = state.outboxes.get(socket);
  if (!outbox) {
    outbox = [];
    state.outboxes.set(socket, outbox);
    setImmediate(() => flushOutbox(state, socket));
  }
  outbox.push({ message, run });
}

/** Writes a client's queued replies in one write, once they are on record. */
export function flushOutbox(state: ServerState, socket: NetModule.Socket): void {
  const outbox = state.outboxes.get(socket);
  if (!outbox) return;
  state.outboxes.delete(socket);
  // What a kernel is told must be on record first.
  state.options.beforeReply();
  let text = "";
  for (const { message, run } of outbox) {
    const refused =
      run?.refusal && "id" in message ? { id: message.id, ok: false, error: run.refusal } : undefined;
    text += `${JSON.stringify(refused ?? message)}\n`;
  }
  if (socket.writable) socket.write(text);
}

/** Writes every client's queued replies (before the supervisor exits). */
export function flushOutboxes(state: ServerState): void {
  for (const socket of [...state.outboxes.keys()]) flushOutbox(state, socket);
}

/** Sends `text` (whole lines) to every connected client. */
export function broadcast(state: ServerState, text: string): void {
  for (const socket of state.clients) if (socket.writable) socket.write(text);
}

/** An error as it goes on the wire: its code when it has a stable one, else BACKEND_ERROR. */
export function toWireError(error: unknown): WireError {
  const e = error as { code?: unknown; message?: unknown };
  const code = typeof e.code === "string" && /^[A-Z_]+$/.test(e.code) ? e.code : "BACKEND_ERROR";
  return { code, message: String(e.message ?? error) };
}
