/**
 * A worker thread's mirror of the names a server serves, kept in step with the main thread
 * (used by the CA and PVA search threads). Protocol-neutral: it knows names only as strings.
 *
 * The main thread ({@link NameFeed}) hands the worker a snapshot plus a MessageChannel of
 * {@link NameOps} batches and a shared counter of batches posted. The worker ({@link NameMirror})
 * drains the port synchronously (receiveMessageOnPort) before it answers a datagram whenever the
 * counter is ahead of what it applied, so a search sent after `registry.add()` returned is always
 * answered; batches also arrive as events while no search comes in.
 */
import { receiveMessageOnPort } from "node:worker_threads";

/** A batch of changes, in order: "+NAME" one more server of the name, "-NAME" one fewer. */
export type NameOps = string[];

/** What the worker needs to build its mirror (part of each thread's "init" message). */
export interface NameMirrorInit {
  /** Served names at the time of the snapshot; later changes come on `names`. */
  snapshot: string[];
  /** Port carrying the {@link NameOps} batches posted after the snapshot. */
  names: MessagePort;
  /** SharedArrayBuffer of one Int32: batches posted on `names` so far. */
  opsPosted: SharedArrayBuffer;
}

/** Main-thread side: batches name changes and posts them to the current thread. */
export class NameFeed {
  private ops: string[] = [];
  private queued = false;
  private port: MessagePort | null = null;
  private posted = new Int32Array(new SharedArrayBuffer(4));

  /** A fresh channel for a new thread; changes queued for the previous one are dropped. */
  open(snapshot: string[]): { init: NameMirrorInit; transfer: MessagePort } {
    this.ops = [];
    this.port?.close();
    const channel = new MessageChannel();
    this.port = channel.port1;
    this.posted = new Int32Array(new SharedArrayBuffer(4));
    const init = { snapshot, names: channel.port2, opsPosted: this.posted.buffer };
    return { init, transfer: channel.port2 };
  }

  /** Queues "+NAME" or "-NAME"; one message per burst (a plugin adds its PVs in one go). */
  queue(op: string): void {
    this.ops.push(op);
    if (this.queued) return;
    this.queued = true;
    queueMicrotask(this.flush);
  }

  /** Posts what is queued now (before any request, so the thread sees it first). */
  readonly flush = (): void => {
    this.queued = false;
    if (this.ops.length === 0) return;
    const ops: NameOps = this.ops;
    this.ops = [];
    // Message first, then the count: the thread reads the port only once the count says so.
    this.port?.postMessage(ops);
    Atomics.add(this.posted, 0, 1);
  };

  close(): void {
    this.port?.close();
  }
}

/** Worker side: applies the snapshot and every batch, in order, through `apply`. */
export class NameMirror {
  private applied = 0;
  private readonly posted: Int32Array<ArrayBufferLike>;
  private readonly port: MessagePort;

  constructor(
    init: NameMirrorInit,
    private readonly apply: (ops: NameOps) => void,
  ) {
    apply(init.snapshot.map((n) => `+${n}`));
    this.posted = new Int32Array(init.opsPosted);
    // A port delivers each message once, by event or by receiveMessageOnPort.
    init.names.onmessage = (ev) => this.batch(ev.data as NameOps);
    this.port = init.names;
  }

  /** Call before answering a datagram: applies every batch posted so far. */
  sync(): void {
    if (Atomics.load(this.posted, 0) === this.applied) return;
    for (;;) {
      const m = receiveMessageOnPort(this.port) as { message: NameOps } | undefined;
      if (m === undefined) return;
      this.batch(m.message);
    }
  }

  private batch(ops: NameOps): void {
    this.applied++;
    this.apply(ops);
  }
}
