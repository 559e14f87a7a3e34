/**
 * A small PV Web Socket client for tests and benchmarks: Bun's WebSocket, every received message
 * parsed and kept in order, `next(pred)` waits for the first not yet taken that matches.
 */

export type PvwsMessage = Record<string, unknown> & { type: string };

export class PvwsTestClient {
  readonly received: PvwsMessage[] = [];
  private taken = 0;
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly ws: WebSocket) {
    ws.addEventListener("message", (ev) => {
      this.received.push(JSON.parse(String(ev.data)) as PvwsMessage);
      for (const w of this.waiters.splice(0)) w();
    });
    ws.addEventListener("close", () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async connect(url: string, headers?: Record<string, string>): Promise<PvwsTestClient> {
    const ws = new WebSocket(url, headers ? { headers } : undefined);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)), {
        once: true,
      });
    });
    return new PvwsTestClient(ws);
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === "string" ? msg : JSON.stringify(msg));
  }

  /**
   * The next message (in arrival order, skipping none) that matches; messages before it that do
   * not match are returned in `skipped` order via `this.skipped`. Rejects if the socket closes.
   */
  async next(pred: (m: PvwsMessage) => boolean = () => true): Promise<PvwsMessage> {
    for (;;) {
      while (this.taken < this.received.length) {
        const m = this.received[this.taken++]!;
        if (pred(m)) return m;
      }
      if (this.closed) throw new Error("PVWS socket closed while waiting");
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Sends an echo and returns every message received before the echo came back. */
  async sync(): Promise<PvwsMessage[]> {
    const tag = `sync-${Math.random()}`;
    const from = this.taken;
    this.send({ type: "echo", tag });
    await this.next((m) => m.type === "echo" && m.tag === tag);
    return this.received.slice(from, this.taken - 1);
  }

  close(): void {
    this.ws.close();
  }
}

/** Decodes a PVWS base64 little-endian array field. */
export function decodeB64(b64: string, kind: "dbl" | "int" | "byt"): number[] {
  const bytes = Buffer.from(b64, "base64");
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  if (kind === "dbl") return [...new Float64Array(buf)];
  if (kind === "int") return [...new Int32Array(buf)];
  return [...new Uint8Array(buf)];
}
