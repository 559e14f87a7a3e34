/**
 * A byte-level CA client for protocol tests: sends hand-built messages and waits for replies, so
 * tests can check exact headers, ECA codes and circuit drops that libca would hide.
 *
 *   const c = await RawCaClient.connect(port);
 *   c.send(msg(CMD.VERSION, 0, 13, 0, 0));
 *   const m = await c.next((m) => m.header.command === CMD.CREATE_CHAN);
 *
 * `next(pred)` resolves with the first not-yet-consumed message matching `pred` (others stay
 * queued); it rejects after a generous timeout or when the server closes the circuit.
 * `closed` resolves when the server closes the connection.
 */
import type { Socket } from "bun";
import { CMD } from "../../src/ca/codec/constants.ts";
import type { CaHeader } from "../../src/ca/codec/header.ts";
import { encodeMessage } from "../../src/ca/codec/messages.ts";
import { MessageReader } from "../../src/ca/codec/stream.ts";

/** A message received from the server (payload copied). */
export interface RawMessage {
  header: CaHeader;
  payload: Uint8Array;
}

/** Builds a request; the payload is zero-padded to 8. */
export function msg(
  command: number,
  dataType: number,
  count: number,
  p1: number,
  p2: number,
  payload: Uint8Array | null = null,
): Uint8Array {
  return encodeMessage(command, dataType, count, p1, p2, payload, true);
}

/** NUL-terminated name bytes (encodeMessage pads them). */
export function nameBytes(name: string): Uint8Array {
  const b = new TextEncoder().encode(name);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/** A big-endian f64 payload. */
export function f64(...vals: number[]): Uint8Array {
  const out = new Uint8Array(vals.length * 8);
  const v = new DataView(out.buffer);
  vals.forEach((x, i) => {
    v.setFloat64(i * 8, x);
  });
  return out;
}

/** EVENT_ADD's 16-byte block with the given mask. */
export function eventBlock(mask: number): Uint8Array {
  const out = new Uint8Array(16);
  new DataView(out.buffer).setUint16(12, mask);
  return out;
}

/** Byte-level CA client over TCP. */
/** The parts joined into one buffer (several messages in one datagram or write). */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A search datagram as libca sends it: VERSION (minor 13, sequence number) + DONT_REPLY SEARCHes. */
export function searchDatagram(seq: number, names: Array<[string, number]>): Uint8Array {
  const parts = [msg(CMD.VERSION, 1, 13, seq, 0)];
  for (const [name, id] of names) parts.push(msg(CMD.SEARCH, 5, 13, id, id, nameBytes(name)));
  return concat(parts);
}

export class RawCaClient {
  readonly received: RawMessage[] = [];
  private waiters: Array<() => void> = [];
  private isClosed = false;
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private readonly reader = new MessageReader({ maxPayload: 1 << 30, extendedAllowed: () => true });
  private socket!: Socket<undefined>;

  private constructor() {
    this.closed = new Promise((r) => {
      this.resolveClosed = r;
    });
  }

  /** Connects to 127.0.0.1:port. */
  static async connect(port: number): Promise<RawCaClient> {
    const c = new RawCaClient();
    c.socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data: (_s, d) => c.onData(d),
        drain: () => c.wake(),
        close: () => c.onClose(),
        error: () => c.onClose(),
      },
    });
    return c;
  }

  /** Connects and performs libca's opening: VERSION, CLIENT_NAME, HOST_NAME. */
  static async handshake(port: number, user = "tester", host = "testhost"): Promise<RawCaClient> {
    const c = await RawCaClient.connect(port);
    c.send(
      msg(CMD.VERSION, 0, 13, 0, 0),
      msg(CMD.CLIENT_NAME, 0, 0, 0, 0, nameBytes(user)),
      msg(CMD.HOST_NAME, 0, 0, 0, 0, nameBytes(host)),
    );
    await c.next((m) => m.header.command === CMD.VERSION);
    return c;
  }

  /** Creates a channel; resolves with the SID and the rights/native type from the replies. */
  async createChannel(
    name: string,
    cid: number,
  ): Promise<{ sid: number; rights: number; dbrType: number; count: number }> {
    this.send(msg(CMD.CREATE_CHAN, 0, 0, cid, 13, nameBytes(name)));
    const ar = await this.next(
      (m) => m.header.command === CMD.ACCESS_RIGHTS && m.header.p1 === cid,
    );
    const rep = await this.next(
      (m) =>
        (m.header.command === CMD.CREATE_CHAN || m.header.command === CMD.CREATE_CH_FAIL) &&
        m.header.p1 === cid,
    );
    if (rep.header.command !== CMD.CREATE_CHAN) throw new Error(`channel ${name} not created`);
    return {
      sid: rep.header.p2,
      rights: ar.header.p2,
      dbrType: rep.header.dataType,
      count: rep.header.count,
    };
  }

  /** Writes bytes to the server (several messages are concatenated into one write). */
  send(...parts: Uint8Array[]): void {
    const buf = concat(parts);
    let sent = 0;
    while (sent < buf.length) {
      const n = this.socket.write(buf, sent, buf.length - sent);
      if (n <= 0) break;
      sent += n;
    }
  }

  /**
   * Writes all of `buf`, waiting whenever the kernel's send buffer is full (a server applying
   * backpressure stops reading, so a large burst blocks here until it reads again).
   */
  async sendAll(buf: Uint8Array): Promise<void> {
    let sent = 0;
    while (sent < buf.length) {
      const n = this.socket.write(buf, sent, buf.length - sent);
      if (n < 0 || this.isClosed) throw new Error("circuit closed while sending");
      sent += n;
      if (sent < buf.length) await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Stops reading from the socket (simulates a stalled client). */
  pause(): void {
    this.socket.pause();
  }

  /** Resumes reading. */
  resume(): void {
    this.socket.resume();
  }

  /** True once the server closed the circuit. */
  get isOpen(): boolean {
    return !this.isClosed;
  }

  /** First unconsumed message matching `pred` (removed from the queue). */
  async next(
    pred: (m: RawMessage) => boolean = () => true,
    timeoutMs = 20_000,
  ): Promise<RawMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.received.findIndex(pred);
      if (i >= 0) return this.received.splice(i, 1)[0] as RawMessage;
      if (this.isClosed) throw new Error("circuit closed while waiting for a message");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a message");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends ECHO and resolves with every message that arrived before its reply (consumed). */
  async sync(): Promise<RawMessage[]> {
    this.send(msg(CMD.ECHO, 0, 0, 0, 0));
    await this.next((m) => m.header.command === CMD.ECHO);
    return this.received.splice(0, this.received.length);
  }

  /** Closes the connection. */
  close(): void {
    this.socket.end();
  }

  private onData(d: Uint8Array): void {
    this.reader.push(d);
    for (;;) {
      const item = this.reader.next();
      if (item === null) break;
      if (item.kind === "error") throw new Error(`server sent a bad frame: ${item.error}`);
      // Copy: the reader's payload may be a view into a Buffer that Bun reuses (Buffer.slice is a view).
      this.received.push({ header: item.header, payload: new Uint8Array(item.payload) });
    }
    this.wake();
  }

  private onClose(): void {
    this.isClosed = true;
    this.resolveClosed();
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
