/**
 * The callback outbox on disk: one append-only file of JSON lines, private to this user.
 * Every record is written with one `write(2)` before the call that caused it returns, so a
 * `serve` killed with SIGKILL loses nothing it had accepted (the page cache outlives the
 * process; only a crash of the machine itself needs more than that). When most lines are
 * settled the file is rewritten with what is still live (compaction), atomically by rename.
 *
 * Nothing read back is trusted: the directory and the file must belong to this user and be
 * closed to others (the file holds callback URLs, which may carry credentials), and each line
 * is validated; one that is not a record (a line torn by a crash mid-write, or an edit) is
 * skipped and reported, never fatal.
 * @module
 */
import {
  closeSync,
  fsyncSync,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  type Stats,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";
import { InvalidSpecError } from "../errors.js";
import { ensurePrivateDir } from "../private-path.js";

const recordSchema = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("watch"),
    workloadId: z.string(),
    url: z.string(),
    traceId: z.string().optional(),
  }),
  z.object({ t: z.literal("unwatch"), workloadId: z.string() }),
  z.object({
    t: z.literal("event"),
    id: z.string(),
    workloadId: z.string(),
    url: z.string(),
    body: z.string(),
    traceId: z.string().optional(),
    at: z.number(),
  }),
  z.object({ t: z.literal("done"), id: z.string() }),
]);

/** One line of the outbox file. */
export type OutboxRecord = z.infer<typeof recordSchema>;

function refuse(path: string, message: string): InvalidSpecError {
  return new InvalidSpecError([{ path: "callbacks.outboxPath", message: `${path}: ${message}` }], {
    subject: "HTTP options",
  });
}

const uid = () => (typeof process.getuid === "function" ? process.getuid() : undefined);

/** An open outbox file. */
export class OutboxJournal {
  readonly path: string;
  #fd: number;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
  }

  /**
   * Opens (creating if needed) the file at `path` and reads back its records, in order.
   * `onSkip` hears about each line that is not a record.
   */
  static open(
    path: string,
    onSkip: (line: number, reason: string) => void,
  ): { journal: OutboxJournal; records: OutboxRecord[] } {
    // Others may read the directory (a shared state root), never write: they could swap the file.
    const problem = ensurePrivateDir(dirname(path));
    if (problem) throw refuse(problem.path, problem.problem);
    let existing: Stats | undefined;
    try {
      existing = lstatSync(path);
    } catch {
      // A new outbox.
    }
    if (existing) {
      if (!existing.isFile()) throw refuse(path, "is not a regular file");
      const me = uid();
      if (me !== undefined && existing.uid !== me)
        throw refuse(path, `belongs to uid ${existing.uid}, not to this user`);
      if ((existing.mode & 0o077) !== 0) throw refuse(path, "is accessible to other users (want mode 0600)");
    }
    const records: OutboxRecord[] = [];
    const text = existing ? readFileSync(path, "utf8") : "";
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as string;
      if (line === "") continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        onSkip(i + 1, "not JSON (torn by a crash mid-write?)");
        continue;
      }
      const parsed = recordSchema.safeParse(value);
      if (parsed.success) records.push(parsed.data);
      else onSkip(i + 1, "not an outbox record");
    }
    const fd = openSync(path, "a", 0o600);
    // A torn last line must not glue itself to the next record.
    if (text !== "" && !text.endsWith("\n")) writeSync(fd, "\n");
    return { journal: new OutboxJournal(path, fd), records };
  }

  /** Appends records; they are in the file when this returns. */
  append(...records: OutboxRecord[]): void {
    let text = "";
    for (const record of records) text += `${JSON.stringify(record)}\n`;
    const data = Buffer.from(text);
    let written = 0;
    // A short write is possible (a full disk); never leave half a line unreported.
    while (written < data.length) written += writeSync(this.#fd, data, written);
  }

  /** Replaces the file's content with `records`, atomically: a crash leaves the old or the new file. */
  rewrite(records: OutboxRecord[]): void {
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      const data = Buffer.from(records.map((r) => `${JSON.stringify(r)}\n`).join(""));
      let written = 0;
      while (written < data.length) written += writeSync(fd, data, written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    closeSync(this.#fd);
    this.#fd = openSync(this.path, "a", 0o600);
  }

  /** Closes the file. */
  close(): void {
    if (this.#fd < 0) return;
    closeSync(this.#fd);
    this.#fd = -1;
  }
}
