/**
 * A test-side dissector built on our codec: decodes every message of a captured conversation into
 * the same shape as the captures' `decoded` field (header + body), so tests compare our decoding
 * with the independent decoder's. Operations' types are remembered per ioid (INIT replies), as a
 * real peer does, to decode the data messages that follow.
 */
import {
  ARRAY,
  BitSet,
  Cmd,
  decodeBeacon,
  decodeClientValidation,
  decodeHeader,
  decodePartial,
  decodeSearch,
  decodeSearchResponse,
  decodeServerValidation,
  decodeType,
  decodeValue,
  formatAddress,
  HEADER_SIZE,
  Reader,
  SCALAR_TYPE_NAMES,
  type Status,
  type StructValue,
  TypeCache,
  TypeCode,
  type TypeDesc,
} from "../../src/pva/codec/index.ts";

/** The captures' "type_members" form: one line per member, two spaces per level. */
export function typeMembers(t: TypeDesc, indent = ""): string[] {
  const out: string[] = [];
  for (const m of t.members ?? []) {
    const mt = m.type;
    if (mt.code === TypeCode.STRUCT) {
      out.push(`${indent}structure ${mt.id ? `${mt.id} ` : ""}${m.name}`);
      out.push(...typeMembers(mt, `${indent}  `));
    } else {
      const base = SCALAR_TYPE_NAMES[mt.code & ~ARRAY] ?? "?";
      out.push(`${indent}${base}${mt.code & ARRAY ? "[]" : ""} ${m.name}`);
    }
  }
  return out;
}

/** Flattens a (partial) structure value into "a.b" -> leaf, arrays as plain arrays. */
export function flatten(v: StructValue, prefix = "", out: Record<string, unknown> = {}) {
  for (const [k, x] of Object.entries(v)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (x && typeof x === "object" && !ArrayBuffer.isView(x) && !Array.isArray(x)) {
      flatten(x as StructValue, key, out);
    } else out[key] = ArrayBuffer.isView(x) ? Array.from(x as unknown as ArrayLike<number>) : x;
  }
  return out;
}

function status(s: Status) {
  return s.type === 0 && s.message === ""
    ? { code: 0, ok: true }
    : { code: s.type, ok: s.type <= 1, message: s.message, trace: s.stack };
}

const hex2 = (n: number) => `0x${n.toString(16).padStart(2, "0")}`;

export interface Dissected {
  header: { command: number; flags: number; le: boolean; control: boolean; size: number };
  body: Record<string, unknown>;
  /** Bytes of the payload left unread (0 for a complete decode). */
  leftover: number;
}

/** Decodes messages of one conversation, remembering operation types by ioid. */
export class Dissector {
  readonly opTypes = new Map<number, TypeDesc>();
  readonly cache = new TypeCache();

  dissect(bytes: Uint8Array, dir: "c2s" | "s2c"): Dissected {
    const h = decodeHeader(bytes);
    const header = {
      command: h.command,
      flags: h.flags,
      le: h.le,
      control: h.control,
      size: h.size,
    };
    if (h.control) return { header, body: {}, leftover: bytes.length - HEADER_SIZE };
    const r = new Reader(bytes, h.le, HEADER_SIZE, HEADER_SIZE + h.size);
    const body = this.body(r, h.command, dir);
    return { header, body, leftover: r.remaining };
  }

  private body(r: Reader, cmd: number, dir: "c2s" | "s2c"): Record<string, unknown> {
    switch (cmd) {
      case Cmd.BEACON: {
        const b = decodeBeacon(r);
        r.u8(); // null status type
        return {
          beacon_sequence: b.seq,
          change_count: b.change,
          server_port: b.port,
          protocol: b.protocol,
        };
      }
      case Cmd.SEARCH: {
        const s = decodeSearch(r);
        return {
          search_sequence_id: s.seq,
          flags: hex2(s.flags),
          response_port: s.replyPort,
          protocols: s.protocols,
          channels: s.channels,
        };
      }
      case Cmd.SEARCH_RESPONSE: {
        const s = decodeSearchResponse(r);
        return {
          search_sequence_id: s.seq,
          server_port: s.port,
          protocol: s.protocol,
          found: s.found,
          channel_ids: s.ids,
        };
      }
      case Cmd.ORIGIN_TAG: {
        const a = formatAddress(r.raw(16));
        return { original_destination: a.includes(".") ? `::ffff:${a}` : a };
      }
      case Cmd.CONNECTION_VALIDATION:
        if (dir === "s2c") {
          const v = decodeServerValidation(r);
          return { server_receive_buffer_size: v.bufferSize, auth_methods: v.methods };
        } else {
          const v = decodeClientValidation(r, this.cache);
          return {
            client_receive_buffer_size: v.bufferSize,
            auth_method: v.method,
            auth_data: v.auth,
          };
        }
      case Cmd.CONNECTION_VALIDATED:
        return { status: status(r.status()) };
      case Cmd.ECHO:
        r.raw(r.remaining);
        return {};
      case Cmd.CREATE_CHANNEL:
        if (dir === "c2s") {
          const n = r.u16();
          const channels = [];
          for (let i = 0; i < n; i++) channels.push({ cid: r.u32(), name: r.string() });
          return { channels };
        }
        return { cid: r.u32(), sid: r.u32(), status: status(r.status()) };
      case Cmd.DESTROY_REQUEST:
      case Cmd.CANCEL_REQUEST:
        return { sid: r.u32(), ioid: r.u32() };
      case Cmd.GET_FIELD:
        if (dir === "c2s") return { sid: r.u32(), ioid: r.u32(), subfield: r.string() };
        return this.typeReply(r, { ioid: r.u32(), status: status(r.status()) });
      default:
        return dir === "c2s" ? this.opRequest(r, cmd) : this.opReply(r, cmd);
    }
  }

  private typeReply(r: Reader, out: Record<string, unknown>): Record<string, unknown> {
    if (r.remaining === 0) return out;
    const t = decodeType(r, this.cache);
    if (t) {
      out.type = `structure ${t.id}`;
      out.type_members = typeMembers(t);
      this.opTypes.set(out.ioid as number, t);
    }
    return out;
  }

  private data(r: Reader, t: TypeDesc | undefined, out: Record<string, unknown>) {
    if (!t) throw new Error("data before type");
    const bits = BitSet.decode(r);
    const value: StructValue = {};
    decodePartial(r, t, bits, this.cache, value);
    out.changed_bits = bits.toArray();
    out.fields = flatten(value);
    return out;
  }

  private opRequest(r: Reader, cmd: number): Record<string, unknown> {
    const out: Record<string, unknown> = { sid: r.u32(), ioid: r.u32() };
    const sub = r.u8();
    out.subcommand = hex2(sub);
    if (sub & 0x08) {
      const t = decodeType(r, this.cache);
      out.pvRequest = t ? decodeValue(r, t, this.cache) : null;
      if (cmd === Cmd.MONITOR && sub & 0x80) out.queue_size = r.u32();
      return out;
    }
    if (cmd === Cmd.MONITOR && sub & 0x80) out.ack_count = r.u32();
    else if (cmd === Cmd.PUT && sub === 0) this.data(r, this.opTypes.get(out.ioid as number), out);
    else if (cmd === Cmd.RPC) {
      const t = decodeType(r, this.cache);
      out.argument = t ? decodeValue(r, t, this.cache) : null;
    }
    return out;
  }

  private opReply(r: Reader, cmd: number): Record<string, unknown> {
    const out: Record<string, unknown> = { ioid: r.u32() };
    const sub = r.u8();
    out.subcommand = hex2(sub);
    const ioid = out.ioid as number;
    if (cmd === Cmd.MONITOR && sub === 0) {
      this.data(r, this.opTypes.get(ioid), out);
      out.overrun_bits = BitSet.decode(r).toArray();
      return out;
    }
    const s = r.status();
    out.status = status(s);
    if (s.type > 1) return out;
    if (sub & 0x08) return cmd === Cmd.RPC ? out : this.typeReply(r, out);
    if (cmd === Cmd.RPC && r.remaining > 0) {
      const t = decodeType(r, this.cache) as TypeDesc;
      out.result_members = typeMembers(t);
      out.result = decodeValue(r, t, this.cache);
      return out;
    }
    if (cmd === Cmd.GET || (cmd === Cmd.PUT && sub & 0x40))
      this.data(r, this.opTypes.get(ioid), out);
    return out;
  }
}

export function hexToBytes(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, "hex"));
}
