/**
 * The append-only log behind durable writes: a value written with put-completion (CA
 * WRITE_NOTIFY, `caput -c`) is on disk (write + fdatasync) before the put is acknowledged.
 * Appends that arrive together share one fdatasync (group commit). The log is compacted into the
 * autosave files: replayed at load, truncated once a batched autosave has written everything it
 * holds. One JSON object per line; a torn last line (crash mid-write) is ignored.
 */
import { type FileHandle, open, readFile } from "node:fs/promises";

interface Entry {
  line: string;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** One logged value. */
export interface LogRecord {
  plugin: string;
  pv: string;
  value: unknown;
}

export class DurableLog {
  private queue: Entry[] = [];
  private scheduled = false;
  // Commits and truncations run one after the other.
  private chain: Promise<void> = Promise.resolve();
  /** Appends made durable so far (compaction checks nothing came in meanwhile). */
  committed = 0;
  /** `committed` when the log was last emptied (nothing to do until it grows). */
  private truncatedAt = 0;

  constructor(readonly file: string) {}

  /** Resolves once the record is on disk; rejects with the reason when it cannot be stored. */
  append(rec: LogRecord): Promise<void> {
    const line = `${JSON.stringify({ p: rec.plugin, n: rec.pv, v: rec.value })}\n`;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ line, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // Same tick: every write of this event-loop turn joins one fdatasync.
        queueMicrotask(() => {
          this.scheduled = false;
          this.chain = this.chain.then(() => this.commit());
        });
      }
    });
  }

  private async commit(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    // Opened per commit and always closed: a handle left to the garbage collector is an error in
    // Bun, and the open costs nothing next to the fdatasync.
    let fh: FileHandle | undefined;
    try {
      fh = await open(this.file, "a", 0o600);
      await fh.write(batch.map((e) => e.line).join(""));
      await fh.datasync();
      this.committed += batch.length;
      for (const e of batch) e.resolve();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      const e = new Error(`value not stored (${code}): the write is refused`);
      for (const x of batch) x.reject(e);
    } finally {
      await fh?.close().catch(() => {});
    }
  }

  /** Records in the log, oldest first (a torn last line is skipped). */
  async replay(): Promise<LogRecord[]> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch {
      return [];
    }
    const out: LogRecord[] = [];
    for (const line of text.split("\n")) {
      if (line === "") continue;
      try {
        const o = JSON.parse(line) as { p?: unknown; n?: unknown; v?: unknown };
        if (typeof o.p === "string" && typeof o.n === "string") {
          out.push({ plugin: o.p, pv: o.n, value: o.v });
        }
      } catch {
        // A line cut by a crash.
      }
    }
    return out;
  }

  /**
   * Empties the log if nothing was appended since `committedBefore` (the autosave files then hold
   * everything it held) and nothing is waiting. Returns whether it did.
   */
  truncateIfUnchanged(committedBefore: number): Promise<boolean> {
    const run = this.chain.then(async () => {
      if (this.committed !== committedBefore || this.queue.length > 0) return false;
      if (committedBefore === this.truncatedAt && committedBefore > 0) return false;
      const fh = await open(this.file, "a", 0o600);
      try {
        await fh.truncate(0);
        await fh.datasync();
      } finally {
        await fh.close().catch(() => {});
      }
      this.truncatedAt = committedBefore;
      return true;
    });
    this.chain = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  /** Waits for the commits and truncations in progress. */
  async close(): Promise<void> {
    await this.chain;
  }
}
