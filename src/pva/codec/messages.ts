/**
 * Payload layouts of the pvAccess messages a server receives and sends (docs/pva.md §Messages).
 * Decoders take a Reader positioned at the payload; encoders append a whole message (header
 * included) to a Writer, so several messages can share one buffer and one socket write.
 */
import { Cmd, Flag, HEADER_SIZE, MAGIC, PVA_VERSION } from "./header.ts";
import { decodeType, type TypeCache, type TypeDesc } from "./types.ts";
import { decodeValue } from "./values.ts";
import { PvaDecodeError, type Reader, type Status, Writer } from "./wire.ts";

/** Starts a message in `w` (byte order = w.le); returns the offset to pass to endMessage. */
export function beginMessage(w: Writer, command: number, server: boolean): number {
  const p = w.ensure(HEADER_SIZE);
  w.buf[p] = MAGIC;
  w.buf[p + 1] = PVA_VERSION;
  w.buf[p + 2] = (server ? Flag.SERVER : 0) | (w.le ? 0 : Flag.BIG_ENDIAN);
  w.buf[p + 3] = command;
  return p;
}

/** Patches the payload size of the message started at `p`. */
export function endMessage(w: Writer, p: number): void {
  w.view.setUint32(p + 4, w.pos - p - HEADER_SIZE, w.le);
}

/** Appends a whole control message. */
export function controlMessage(w: Writer, code: number, value: number, server: boolean): void {
  const p = w.ensure(HEADER_SIZE);
  w.buf[p] = MAGIC;
  w.buf[p + 1] = PVA_VERSION;
  w.buf[p + 2] = Flag.CONTROL | (server ? Flag.SERVER : 0) | (w.le ? 0 : Flag.BIG_ENDIAN);
  w.buf[p + 3] = code;
  w.view.setUint32(p + 4, value >>> 0, w.le);
}

/** One-message convenience: builds `command` with `body` in a fresh buffer. */
export function message(
  command: number,
  server: boolean,
  body: (w: Writer) => void,
  le = true,
): Uint8Array {
  const w = new Writer(64, le);
  const p = beginMessage(w, command, server);
  body(w);
  endMessage(w, p);
  return w.bytes();
}

// ---- discovery ----

export const SearchFlag = { MUST_REPLY: 0x01, UNICAST: 0x80 } as const;

export interface SearchRequest {
  seq: number;
  flags: number;
  replyAddr: string;
  replyPort: number;
  protocols: string[];
  channels: Array<{ id: number; name: string }>;
}

export function decodeSearch(r: Reader, maxNames = 65535): SearchRequest {
  const seq = r.u32();
  const flags = r.u8();
  r.raw(3);
  const replyAddr = r.address();
  const replyPort = r.u16();
  const np = r.count(1);
  const protocols: string[] = [];
  for (let i = 0; i < np; i++) protocols.push(r.string());
  const channels: SearchRequest["channels"] = [];
  // A discovery ping may end right after the protocols.
  const nc = r.remaining >= 2 ? r.u16() : 0;
  if (nc > maxNames) throw new PvaDecodeError(`search with ${nc} names`);
  for (let i = 0; i < nc; i++) channels.push({ id: r.u32(), name: r.string() });
  return { seq, flags, replyAddr, replyPort, protocols, channels };
}

export function encodeSearch(w: Writer, s: SearchRequest): void {
  const p = beginMessage(w, Cmd.SEARCH, false);
  w.u32(s.seq).u8(s.flags).u8(0).u8(0).u8(0).address(s.replyAddr).u16(s.replyPort);
  w.size(s.protocols.length);
  for (const x of s.protocols) w.string(x);
  w.u16(s.channels.length);
  for (const c of s.channels) w.u32(c.id).string(c.name);
  endMessage(w, p);
}

export interface SearchResponse {
  guid: Uint8Array;
  seq: number;
  addr: string;
  port: number;
  protocol: string;
  found: boolean;
  ids: number[];
}

export function encodeSearchResponse(w: Writer, s: SearchResponse): void {
  const p = beginMessage(w, Cmd.SEARCH_RESPONSE, true);
  w.raw(s.guid).u32(s.seq).address(s.addr).u16(s.port).string(s.protocol);
  w.u8(s.found ? 1 : 0).u16(s.ids.length);
  for (const id of s.ids) w.u32(id);
  endMessage(w, p);
}

export function decodeSearchResponse(r: Reader): SearchResponse {
  const guid = r.raw(12).slice();
  const seq = r.u32();
  const addr = r.address();
  const port = r.u16();
  const protocol = r.string();
  const found = r.u8() !== 0;
  const n = r.u16();
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(r.u32());
  return { guid, seq, addr, port, protocol, found, ids };
}

export interface Beacon {
  guid: Uint8Array;
  flags: number;
  seq: number;
  change: number;
  addr: string;
  port: number;
  protocol: string;
}

export function encodeBeacon(w: Writer, b: Beacon): void {
  const p = beginMessage(w, Cmd.BEACON, true);
  w.raw(b.guid)
    .u8(b.flags)
    .u8(b.seq & 0xff)
    .u16(b.change & 0xffff);
  w.address(b.addr).u16(b.port).string(b.protocol).u8(0xff);
  endMessage(w, p);
}

export function decodeBeacon(r: Reader): Beacon {
  const guid = r.raw(12).slice();
  const flags = r.u8();
  const seq = r.u8();
  const change = r.u16();
  const addr = r.address();
  const port = r.u16();
  const protocol = r.string();
  return { guid, flags, seq, change, addr, port, protocol };
}

// ---- connection ----

export interface ServerValidation {
  bufferSize: number;
  registryMax: number;
  methods: string[];
}

export function encodeServerValidation(w: Writer, v: ServerValidation): void {
  const p = beginMessage(w, Cmd.CONNECTION_VALIDATION, true);
  w.u32(v.bufferSize).u16(v.registryMax).size(v.methods.length);
  for (const m of v.methods) w.string(m);
  endMessage(w, p);
}

export function decodeServerValidation(r: Reader): ServerValidation {
  const bufferSize = r.u32();
  const registryMax = r.u16();
  const n = r.count(1);
  const methods: string[] = [];
  for (let i = 0; i < n; i++) methods.push(r.string());
  return { bufferSize, registryMax, methods };
}

export interface ClientValidation {
  bufferSize: number;
  registryMax: number;
  qos: number;
  method: string;
  /** The method's data: for "ca", { user, host }. */
  authType: TypeDesc | null;
  auth: unknown;
}

export function decodeClientValidation(r: Reader, cache: TypeCache | null): ClientValidation {
  const bufferSize = r.u32();
  const registryMax = r.u16();
  const qos = r.u16();
  const method = r.string();
  let authType: TypeDesc | null = null;
  let auth: unknown = null;
  // Old clients may end after the method name.
  if (r.remaining > 0) {
    authType = decodeType(r, cache);
    if (authType) auth = decodeValue(r, authType, cache);
  }
  return { bufferSize, registryMax, qos, method, authType, auth };
}

export function encodeStatusOnly(w: Writer, command: number, s: Status): void {
  const p = beginMessage(w, command, true);
  w.status(s);
  endMessage(w, p);
}

// ---- channels ----

export function decodeCreateChannel(r: Reader, max: number): Array<{ cid: number; name: string }> {
  const n = r.u16();
  if (n > max) throw new PvaDecodeError(`CREATE_CHANNEL with ${n} channels`);
  const out: Array<{ cid: number; name: string }> = [];
  for (let i = 0; i < n; i++) out.push({ cid: r.u32(), name: r.string() });
  return out;
}

export function encodeCreateChannelReply(w: Writer, cid: number, sid: number, s: Status): void {
  const p = beginMessage(w, Cmd.CREATE_CHANNEL, true);
  w.u32(cid).u32(sid).status(s);
  endMessage(w, p);
}

export function encodeDestroyChannel(w: Writer, sid: number, cid: number, server: boolean): void {
  const p = beginMessage(w, Cmd.DESTROY_CHANNEL, server);
  w.u32(sid).u32(cid);
  endMessage(w, p);
}

/** The common prefix of operation requests. */
export interface OpPrefix {
  sid: number;
  ioid: number;
  sub: number;
}

export function decodeOpPrefix(r: Reader): OpPrefix {
  return { sid: r.u32(), ioid: r.u32(), sub: r.u8() };
}

/** Starts an operation reply: ioid, subcommand, status. */
export function beginOpReply(
  w: Writer,
  command: number,
  ioid: number,
  sub: number,
  s: Status | null,
): number {
  const p = beginMessage(w, command, true);
  w.u32(ioid).u8(sub);
  if (s) w.status(s);
  return p;
}

export const MessageType = { INFO: 0, WARNING: 1, ERROR: 2, FATAL: 3 } as const;

export function encodeMessage(w: Writer, ioid: number, type: number, text: string): void {
  const p = beginMessage(w, Cmd.MESSAGE, true);
  w.u32(ioid).u8(type).string(text);
  endMessage(w, p);
}
