/**
 * A small pvAccess client for integration tests, built on our codec: handshake (anonymous or ca),
 * channels, GET/PUT/PUT_GET/MONITOR/GET_FIELD/RPC, echo, and UDP/TCP search. Every received message
 * is kept in order; `next(pred)` takes the first one not yet consumed that matches, waiting for it
 * if needed (with a hang guard so a broken server fails the test instead of stalling it).
 */
import dgram from "node:dgram";
import type { Socket } from "bun";
import {
  BitSet,
  beginMessage,
  Cmd,
  Ctrl,
  controlMessage,
  decodeBitsAndPartial,
  decodeSearchResponse,
  decodeServerValidation,
  decodeType,
  decodeValue,
  encodePartial,
  encodeSearch,
  encodeType,
  encodeValue,
  endMessage,
  Framer,
  lookup,
  type Message,
  Reader,
  type SearchResponse,
  type Status,
  type StructValue,
  scalar,
  struct,
  TypeCache,
  TypeCode,
  type TypeDesc,
  Writer,
} from "../../src/pva/codec/index.ts";

const GUARD_MS = 8000;

/** Builds a pvRequest `{field {a {} b {}} record {_options {k "v"}}}`. */
export function pvRequest(fields: string[] = [], options: Record<string, string> = {}) {
  const tree: Record<string, unknown> = {};
  for (const f of fields) {
    let node = tree;
    for (const part of f.split(".")) {
      node[part] = (node[part] as Record<string, unknown>) ?? {};
      node = node[part] as Record<string, unknown>;
    }
  }
  const toType = (n: Record<string, unknown>): TypeDesc =>
    struct(
      "",
      Object.entries(n).map(([k, v]) => [k, toType(v as Record<string, unknown>)]),
    );
  const members: Array<[string, TypeDesc]> = [["field", toType(tree)]];
  const opts = Object.entries(options);
  if (opts.length > 0) {
    const o = struct(
      "",
      opts.map(([k]) => [k, scalar(TypeCode.STRING)]),
    );
    members.push(["record", struct("", [["_options", o]])]);
  }
  const value = { field: {}, record: { _options: options } };
  return { type: struct("", members), value };
}

export class PvaClient {
  readonly received: Message[] = [];
  readonly cache = new TypeCache();
  private waiters: Array<() => void> = [];
  private framer = new Framer(1 << 28);
  private nextId = 1;
  closed = false;
  /** Types of operations by ioid (from INIT replies). */
  readonly types = new Map<number, TypeDesc>();

  private constructor(private socket: Socket<{ c: PvaClient | null }>) {}

  static async connect(
    port: number,
    opts: {
      host?: string;
      auth?: "anonymous" | "ca";
      user?: string;
      userHost?: string;
      validate?: boolean;
    } = {},
  ): Promise<PvaClient> {
    let client: PvaClient | null = null;
    const socket = await Bun.connect<{ c: PvaClient | null }>({
      hostname: opts.host ?? "127.0.0.1",
      port,
      data: { c: null },
      socket: {
        data: (s, d) => s.data.c?.onData(d),
        close: (s) => s.data.c?.onClose(),
        error: () => {},
      },
    });
    client = new PvaClient(socket);
    socket.data.c = client;
    if (opts.validate === false) return client;
    await client.next((m) => m.control && m.command === Ctrl.SET_BYTE_ORDER);
    const v = await client.next((m) => m.command === Cmd.CONNECTION_VALIDATION);
    decodeServerValidation(new Reader(v.payload, v.le));
    client.send(Cmd.CONNECTION_VALIDATION, (w) => {
      w.u32(0x10000).u16(0x7fff).u16(0);
      if ((opts.auth ?? "ca") === "ca") {
        w.string("ca");
        const t = struct("", [
          ["user", scalar(TypeCode.STRING)],
          ["host", scalar(TypeCode.STRING)],
        ]);
        encodeType(w, t);
        encodeValue(w, t, { user: opts.user ?? "", host: opts.userHost ?? "" });
      } else {
        w.string("anonymous");
        w.u8(0xff);
      }
    });
    const ok = await client.next((m) => m.command === Cmd.CONNECTION_VALIDATED);
    const st = new Reader(ok.payload, ok.le).status();
    if (st.type > 1) throw new Error(`validation refused: ${st.message}`);
    return client;
  }

  /** When set, sees every message first; returning true consumes it (benchmarks count this way). */
  tap: ((m: Message) => boolean) | null = null;

  private onData(d: Uint8Array): void {
    for (const m of this.framer.push(d)) if (!this.tap?.(m)) this.received.push(m);
    this.wake();
  }

  private onClose(): void {
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Sends raw bytes (hostile-input tests). */
  raw(b: Uint8Array): void {
    this.socket.write(b);
  }

  send(cmd: number, body: (w: Writer) => void): void {
    const w = new Writer(64, true);
    const p = beginMessage(w, cmd, false);
    body(w);
    endMessage(w, p);
    this.socket.write(w.bytes());
  }

  /** Resolves with the first unconsumed message matching `pred` (removing it). */
  async next(pred: (m: Message) => boolean, guardMs = GUARD_MS): Promise<Message> {
    const deadline = Date.now() + guardMs;
    for (;;) {
      const i = this.received.findIndex(pred);
      if (i >= 0) return this.received.splice(i, 1)[0] as Message;
      if (this.closed) throw new Error("connection closed");
      if (Date.now() > deadline) throw new Error("no matching message (hang guard)");
      await new Promise<void>((res) => {
        const t = setTimeout(res, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  /** Waits for the server to close the connection. */
  async waitClosed(guardMs = GUARD_MS): Promise<void> {
    const deadline = Date.now() + guardMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("still open (hang guard)");
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.socket.end();
  }

  /** Stops reading from the socket (a slow client); the server's writes back up. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  ioid(): number {
    return 0x10000 + this.nextId++;
  }

  /** CREATE_CHANNEL; resolves with the sid or rejects with the status message. */
  async channel(name: string): Promise<{ sid: number; cid: number }> {
    const cid = this.nextId++;
    this.send(Cmd.CREATE_CHANNEL, (w) => w.u16(1).u32(cid).string(name));
    const m = await this.next(
      (x) => x.command === Cmd.CREATE_CHANNEL && new Reader(x.payload, x.le).u32() === cid,
    );
    const r = new Reader(m.payload, m.le);
    r.u32();
    const sid = r.u32();
    const st = r.status();
    if (st.type > 1) throw new Error(st.message);
    return { sid, cid };
  }

  /** The next reply to `cmd` for `ioid`, as a Reader after ioid+sub, with the subcommand. */
  async reply(
    cmd: number,
    ioid: number,
    withStatus = true,
  ): Promise<{ r: Reader; sub: number; status: Status }> {
    const m = await this.next(
      (x) => x.command === cmd && new Reader(x.payload, x.le).u32() === ioid,
    );
    const r = new Reader(m.payload, m.le);
    r.u32();
    const sub = cmd === Cmd.GET_FIELD ? 0 : r.u8();
    const status = withStatus ? r.status() : { type: 0 as const, message: "", stack: "" };
    return { r, sub, status };
  }

  /** INIT for GET/PUT/MONITOR/PUT_GET/RPC; resolves with the type (null for RPC). */
  async init(
    cmd: number,
    sid: number,
    ioid: number,
    req = pvRequest(),
    extra?: (w: Writer) => void,
    sub = 0x08,
  ): Promise<TypeDesc | null> {
    this.send(cmd, (w) => {
      w.u32(sid).u32(ioid).u8(sub);
      encodeType(w, req.type);
      encodeValue(w, req.type, req.value);
      extra?.(w);
    });
    const { r, status } = await this.reply(cmd, ioid);
    if (status.type > 1) throw new Error(status.message);
    if (cmd === Cmd.RPC) return null;
    const t = decodeType(r, this.cache);
    if (t) this.types.set(ioid, t);
    return t;
  }

  async get(
    name: string,
    fields: string[] = [],
  ): Promise<{ bits: BitSet; value: StructValue; type: TypeDesc }> {
    const { sid } = await this.channel(name);
    const ioid = this.ioid();
    const type = (await this.init(Cmd.GET, sid, ioid, pvRequest(fields))) as TypeDesc;
    this.send(Cmd.GET, (w) => w.u32(sid).u32(ioid).u8(0x10));
    const { r, status } = await this.reply(Cmd.GET, ioid);
    if (status.type > 1) throw new Error(status.message);
    return { ...decodeBitsAndPartial(r, type, this.cache), type };
  }

  /** PUT of `path` (e.g. "value" or "value.index") = v; resolves with the EXEC status. */
  async put(name: string, v: unknown, path = "value"): Promise<Status> {
    const { sid } = await this.channel(name);
    const ioid = this.ioid();
    const type = (await this.init(Cmd.PUT, sid, ioid)) as TypeDesc;
    const { bits, data } = partialFor(type, path, v);
    this.send(Cmd.PUT, (w) => {
      w.u32(sid).u32(ioid).u8(0x10);
      bits.encode(w);
      encodePartial(w, type, data, bits);
    });
    return (await this.reply(Cmd.PUT, ioid)).status;
  }

  async getField(name: string, sub = ""): Promise<{ status: Status; type: TypeDesc | null }> {
    const { sid } = await this.channel(name);
    const ioid = this.ioid();
    this.send(Cmd.GET_FIELD, (w) => w.u32(sid).u32(ioid).string(sub));
    const { r, status } = await this.reply(Cmd.GET_FIELD, ioid);
    return { status, type: status.type > 1 ? null : decodeType(r, this.cache) };
  }

  /** RPC with an argument; resolves with status and result. */
  async rpc(name: string, argType: TypeDesc, arg: unknown) {
    const { sid } = await this.channel(name);
    const ioid = this.ioid();
    await this.init(Cmd.RPC, sid, ioid);
    this.send(Cmd.RPC, (w) => {
      w.u32(sid).u32(ioid).u8(0x10);
      encodeType(w, argType);
      encodeValue(w, argType, arg);
    });
    const { r, status } = await this.reply(Cmd.RPC, ioid);
    if (status.type > 1) return { status, type: null, value: null };
    const type = decodeType(r, this.cache);
    return { status, type, value: type ? decodeValue(r, type, this.cache) : null };
  }

  /** Next MONITOR update for `ioid`: changed bits and the partial value. */
  async update(ioid: number): Promise<{ bits: BitSet; value: StructValue }> {
    const type = this.types.get(ioid) as TypeDesc;
    const m = await this.next(
      (x) =>
        x.command === Cmd.MONITOR && monitorData(x) && new Reader(x.payload, x.le).u32() === ioid,
    );
    const r = new Reader(m.payload, m.le);
    r.u32();
    r.u8();
    const out = decodeBitsAndPartial(r, type, this.cache);
    BitSet.decode(r);
    return out;
  }

  /** Number of MONITOR updates for `ioid` received and not yet consumed. */
  pendingUpdates(ioid: number): number {
    return this.received.filter(
      (x) =>
        x.command === Cmd.MONITOR && monitorData(x) && new Reader(x.payload, x.le).u32() === ioid,
    ).length;
  }

  echo(payload: Uint8Array): void {
    this.send(Cmd.ECHO, (w) => w.raw(payload));
  }

  setByteOrder(): void {
    const w = new Writer(8, true);
    controlMessage(w, Ctrl.SET_BYTE_ORDER, 0, false);
    this.socket.write(w.bytes());
  }

  /** SEARCH over this TCP connection (name-server style). */
  search(names: string[], seq = 0x66696e64): void {
    const w = new Writer(64, false);
    encodeSearch(w, {
      seq,
      flags: 0,
      replyAddr: "::",
      replyPort: 0,
      protocols: ["tcp"],
      channels: names.map((name, i) => ({ id: 100 + i, name })),
    });
    this.socket.write(w.bytes());
  }
}

function monitorData(m: Message): boolean {
  return m.payload[4] === 0x00;
}

/** Bits and a partial structure setting `path` to `v` in `type`. */
export function partialFor(
  type: TypeDesc,
  path: string,
  v: unknown,
): { bits: BitSet; data: StructValue } {
  const hit = lookup(type, path);
  if (!hit) throw new Error(`no field ${path}`);
  const data: StructValue = {};
  let node = data;
  const parts = path.split(".");
  for (const [i, p] of parts.entries()) {
    if (i === parts.length - 1) node[p] = v;
    else {
      node[p] = {};
      node = node[p] as StructValue;
    }
  }
  return { bits: BitSet.of(hit.bit), data };
}

/** Sends a UDP SEARCH to 127.0.0.1:port and collects replies for `waitMs`. */
export async function udpSearch(
  port: number,
  names: string[],
  opts: { mustReply?: boolean; waitMs?: number; le?: boolean } = {},
): Promise<SearchResponse[]> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const replies: SearchResponse[] = [];
  s.on("message", (msg) => {
    const le = (msg[2] ?? 0) < 0x80;
    replies.push(decodeSearchResponse(new Reader(new Uint8Array(msg), le, 8)));
  });
  const w = new Writer(64, opts.le ?? false);
  encodeSearch(w, {
    seq: 0x1234,
    flags: 0x80 | (opts.mustReply ? 1 : 0),
    replyAddr: "::",
    replyPort: s.address().port,
    protocols: ["tcp"],
    channels: names.map((name, i) => ({ id: 500 + i, name })),
  });
  s.send(w.bytes(), port, "127.0.0.1");
  await new Promise((r) => setTimeout(r, opts.waitMs ?? 300));
  s.close();
  return replies;
}
