/**
 * The kernel's side of the supervisor connection: launches the supervisor when none
 * answers on the state dir's socket, speaks the NDJSON protocol, and turns its errors into
 * typed {@link RuntimeKernelError}s. One connection per backend; requests written in the
 * same tick leave in one write.
 * @module
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { connect, type Socket } from "node:net";
import {
  BackendUnavailableError,
  ResourceExhaustedError,
  RuntimeKernelError,
  type RuntimeKernelErrorCode,
} from "../../errors.js";
import {
  PROTOCOL_VERSION,
  type Replies,
  type RequestBody,
  type ServerMessage,
  type WireError,
  type WireExit,
} from "./protocol.js";
import { ensureStateDir } from "./state-dir.js";
import { type LaunchOptions, launchSupervisor } from "./supervisor-launcher.js";
import { readLimits, readProcStat } from "./supervisor-proc.js";

/** What the client needs to find, launch and talk to its supervisor. */
export interface SupervisorClientOptions extends LaunchOptions {
  /** Called for every exit the supervisor pushes. */
  onExit: (runId: string, exit: WireExit) => void;
  /** Called after the connection was lost and is back (possibly to a new supervisor). */
  onReconnect: () => void;
  /** Called for what a supervisor reports outside any request (journal lines it skipped, a journal it cannot write). */
  onWarning: (message: string) => void;
  /** The most live workloads this client has had (sizes the log file pool of a supervisor that starts later). */
  poolHint: () => number;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/**
 * Requests made in one tick leave in one write, but a long burst leaves in chunks of this
 * many, so the supervisor works on the first while the kernel is still making the rest.
 */
const FLUSH_AT = 32;

/**
 * What connecting says when no supervisor listens, or one is dying under the connection
 * (it was killed with the connection in its backlog: ECONNRESET): launch, or try again.
 */
const NOBODY_LISTENS = new Set(["ENOENT", "ECONNREFUSED", "ECONNRESET"]);

/** File descriptors the process must keep free beyond what a call needs: EMFILE is never reached. */
const FD_RESERVE = 16;

/**
 * Refuses, with a typed error, an operation that needs `needed` more file descriptors than
 * this process has left. execa and Node both crash or throw untyped errors at EMFILE;
 * counting first is how the backend never gets there.
 */
export function ensureFileDescriptors(needed: number, what: string): void {
  const limit = readLimits({ readFileSync }).openFiles;
  if (!Number.isFinite(limit)) return;
  let open = 0;
  try {
    open = readdirSync("/proc/self/fd").length;
  } catch {
    return;
  }
  if (open + needed + FD_RESERVE > limit) {
    throw new ResourceExhaustedError(
      `Cannot ${what}: ${open} file descriptors open of a limit of ${limit} (ulimit -n), ${needed + FD_RESERVE} more needed`,
    );
  }
}

const KNOWN_CODES = new Set<string>([
  "START_FAILED",
  "RESOURCE_EXHAUSTED",
  "WORKLOAD_CONFLICT",
  "CLEANUP_FAILED",
  "BACKEND_UNAVAILABLE",
  "BACKEND_ERROR",
]);

/** A wire error as a typed error. `NOT_FOUND` keeps its code on a plain RuntimeKernelError subclass. */
export class SupervisorError extends RuntimeKernelError {
  /** The supervisor's own code (`NOT_FOUND` included). */
  readonly wireCode: string;
  constructor(error: WireError) {
    const code = (KNOWN_CODES.has(error.code) ? error.code : "BACKEND_ERROR") as RuntimeKernelErrorCode;
    super(code, error.message, {
      retryable: code === "RESOURCE_EXHAUSTED" || code === "BACKEND_UNAVAILABLE",
    });
    this.wireCode = error.code;
  }
}

/** The supervisor closed the connection (it exited or died) before replying. */
export class ConnectionClosedError extends BackendUnavailableError {
  constructor() {
    super("The connection to the process supervisor closed");
  }
}

/** One connection to the supervisor of a state dir. */
export class SupervisorClient {
  readonly #options: SupervisorClientOptions;
  #socket: Socket | undefined;
  #connecting: Promise<Socket> | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #buffer = "";
  #outbox: string[] = [];
  /** Things that must keep the process alive (exit watchers). */
  #holds = 0;
  #closing = false;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #supervisorPid: number | undefined;
  #connectedBefore = false;
  #connections = 0;

  constructor(options: SupervisorClientOptions) {
    this.#options = options;
  }

  /** How many times this client has connected: exits pushed between two connections never reached it. */
  get connections(): number {
    return this.#connections;
  }

  /** The pid of the supervisor this client last talked to. */
  get supervisorPid(): number | undefined {
    return this.#supervisorPid;
  }

  /** Sends one request and resolves with its result; rejects with a typed error. */
  async request<B extends RequestBody>(body: B): Promise<Replies[B["op"]]> {
    const socket = this.#socket ?? (await this.#connect());
    try {
      return (await this.#send(socket, body)) as Replies[B["op"]];
    } catch (error) {
      // The supervisor went away under this request. Every operation but start is
      // idempotent: ask again, which reaches (or launches) a live supervisor. A start is
      // not retried (the lost supervisor may have spawned it), nor a shutdown or a detach
      // (the supervisor is gone, as they asked).
      if (
        !(error instanceof ConnectionClosedError) ||
        body.op === "start" ||
        body.op === "shutdown" ||
        body.op === "detach"
      )
        throw error;
      const again = this.#socket ?? (await this.#connect());
      return (await this.#send(again, body)) as Replies[B["op"]];
    }
  }

  /** Keeps the process alive while something waits for pushed exits. */
  hold(): void {
    this.#holds++;
    this.#updateRef();
  }

  /** Undoes one {@link hold}. */
  release(): void {
    this.#holds = Math.max(0, this.#holds - 1);
    this.#updateRef();
  }

  /**
   * Closes the connection; pending requests reject. The next request connects again. A
   * supervisor left with no workload and no other client exits: then this resolves once it
   * has, so that nothing writes to the state and log dirs any more.
   */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const socket = this.#socket ?? (await this.#connecting?.catch(() => undefined));
    if (socket && !socket.destroyed) {
      const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
      this.#updateRef();
      const exiting = await this.#send(socket, { op: "detach" }).then(
        (reply) => (reply as Replies["detach"]).exiting,
        () => true, // it closed first: gone, or going
      );
      if (exiting) await this.waitExited();
      else socket.end();
      await closed;
    }
    this.#closing = false;
  }

  /**
   * Resolves once the supervisor has closed this connection and its process is gone (after
   * a shutdown or detach request), or after `launchTimeoutMs` if it lingers.
   */
  async waitExited(): Promise<void> {
    const socket = this.#socket;
    if (socket && !socket.destroyed) {
      socket.ref();
      await new Promise<void>((resolve) => socket.once("close", () => resolve()));
    }
    const pid = this.#supervisorPid;
    const deadline = Date.now() + this.#options.launchTimeoutMs;
    // It closes its connections last, after its files: its exit follows within moments.
    while (pid !== undefined && Date.now() < deadline) {
      const stat = readProcStat({ openSync, readSync, closeSync }, pid);
      if (stat === undefined || stat.zombie) return;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  #send(socket: Socket, body: RequestBody): Promise<unknown> {
    const id = this.#nextId++;
    const promise = new Promise<unknown>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    // The id goes in front of the body's own fields, without copying the body (a spread).
    this.#outbox.push(`{"id":${id},${JSON.stringify(body).slice(1)}\n`);
    if (this.#outbox.length >= FLUSH_AT) this.#flush(socket);
    else if (this.#outbox.length === 1) {
      process.nextTick(() => this.#flush(socket));
    }
    this.#updateRef();
    return promise;
  }

  #flush(socket: Socket): void {
    if (this.#outbox.length === 0) return;
    const text = this.#outbox.join("");
    this.#outbox = [];
    if (!socket.destroyed) socket.write(text);
  }

  #updateRef(): void {
    const socket = this.#socket;
    if (!socket) return;
    // While closing, the process waits for the supervisor to see it go (or to exit).
    if (this.#pending.size > 0 || this.#holds > 0 || this.#closing) socket.ref();
    else socket.unref();
  }

  #connect(): Promise<Socket> {
    this.#connecting ??= this.#establish()
      .then((socket) => {
        // Back after a lost connection, whoever asked: exits pushed meanwhile were missed,
        // and a new supervisor knows of ends it found at start-up without pushing them.
        if (this.#connectedBefore) queueMicrotask(() => this.#options.onReconnect());
        this.#connectedBefore = true;
        return socket;
      })
      .finally(() => {
        this.#connecting = undefined;
      });
    return this.#connecting;
  }

  async #establish(): Promise<Socket> {
    const { config, launchTimeoutMs } = this.#options;
    // Before anything is sent: a socket another user could have made gets no spec.
    ensureStateDir(config.stateDir, config.logDir);
    const deadline = Date.now() + launchTimeoutMs;
    let lastLaunch = 0;
    for (;;) {
      let socket: Socket;
      try {
        socket = await openSocket(config.socketPath);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "EMFILE" || code === "ENFILE") {
          throw new ResourceExhaustedError("Cannot connect to the supervisor: no file descriptor left", {
            cause: error,
          });
        }
        if (NOBODY_LISTENS.has(code as string) && Date.now() < deadline) {
          // Launch when nothing answers. A launched supervisor that found the lock taken
          // (a dying one still holds it, or another is coming up) exits at once: try the
          // socket for a while, then launch again.
          if (Date.now() - lastLaunch > 500) {
            lastLaunch = Date.now();
            ensureFileDescriptors(8, "launch the process supervisor");
            await launchSupervisor(this.#options).catch((launchError: unknown) => {
              if (launchError instanceof RuntimeKernelError) throw launchError;
              throw new BackendUnavailableError(
                `Cannot launch the process supervisor: ${(launchError as Error).message}`,
                { cause: launchError },
              );
            });
          } else {
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          continue;
        }
        throw new BackendUnavailableError(
          `Cannot reach the process supervisor at ${config.socketPath}: ${(error as Error).message}`,
          { cause: error },
        );
      }
      this.#attach(socket);
      let hello: Replies["hello"];
      try {
        hello = (await this.#send(socket, {
          op: "hello",
          version: PROTOCOL_VERSION,
          poolHint: this.#options.poolHint(),
        })) as Replies["hello"];
      } catch (error) {
        // Connected to a dying supervisor's listener (the kernel still queued us): try again.
        if (error instanceof ConnectionClosedError && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 10));
          continue;
        }
        throw error;
      }
      if (hello.version !== PROTOCOL_VERSION) {
        socket.destroy();
        throw new BackendUnavailableError(
          `The supervisor of ${config.stateDir} (pid ${hello.pid}) speaks protocol ${hello.version}, this backend ${PROTOCOL_VERSION}: ` +
            "stop it (stopSupervisor) once its workloads are done, or use another stateDir",
        );
      }
      // Its start-up warnings once per supervisor, not at every reconnection.
      if (hello.pid !== this.#supervisorPid)
        for (const warning of hello.warnings) this.#options.onWarning(warning);
      this.#supervisorPid = hello.pid;
      this.#connections++;
      return socket;
    }
  }

  #attach(socket: Socket): void {
    this.#socket = socket;
    this.#buffer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.#onData(chunk));
    socket.on("error", () => {});
    socket.on("close", () => this.#onClose(socket));
    this.#updateRef();
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    let start = 0;
    let newline = this.#buffer.indexOf("\n");
    while (newline >= 0) {
      const line = this.#buffer.slice(start, newline);
      start = newline + 1;
      newline = this.#buffer.indexOf("\n", start);
      let message: ServerMessage;
      try {
        message = JSON.parse(line);
      } catch {
        continue;
      }
      if ("event" in message) {
        if (message.event === "exit") this.#options.onExit(message.runId, message.exit);
        else this.#options.onWarning(message.message);
        continue;
      }
      const pending = this.#pending.get(message.id);
      if (!pending) continue;
      this.#pending.delete(message.id);
      if (message.ok) pending.resolve(message.result);
      else pending.reject(new SupervisorError(message.error));
    }
    this.#buffer = this.#buffer.slice(start);
    this.#updateRef();
  }

  #onClose(socket: Socket): void {
    if (this.#socket !== socket) return;
    this.#socket = undefined;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(new ConnectionClosedError());
    if (!this.#closing && this.#holds > 0) this.#scheduleReconnect(50);
  }

  /** Exit watchers are waiting: get back to a supervisor (a new one adopts the orphans). */
  #scheduleReconnect(delayMs: number): void {
    if (this.#reconnectTimer) return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#socket || this.#closing || this.#holds === 0) return;
      this.#connect().catch(() => this.#scheduleReconnect(Math.min(delayMs * 2, 5_000)));
    }, delayMs);
  }
}

function openSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    socket.once("connect", () => {
      socket.removeListener("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}
