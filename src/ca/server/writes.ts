/**
 * Client writes (WRITE, WRITE_NOTIFY) of one channel: checking and decoding the request, and the
 * record that follows one write from the PV's handler to its answer. Clients send writes by the
 * hundred thousand (acctst), so the common write — one number to a numeric scalar — is decoded in
 * place and its record comes from a pool: it allocates nothing here.
 */
import type { Pv } from "../../pv/pv.ts";
import type { PvValue, PvWriteError } from "../../pv/types.ts";
import type { WriteWaiter } from "../../pv/writes.ts";
import { ECA } from "../codec/constants.ts";
import { type DecodePutResult, decodePlainScalarAt, decodePut } from "../codec/dbr-decode.ts";
import { isValidDbrType } from "../codec/dbr-layout.ts";
import type { CaHeader } from "../codec/header.ts";
import type { Channel } from "./channel.ts";

/** The written value in the PV's native form, or the ECA status and reason of a refusal. */
export function decodeWrite(
  pv: Pv,
  h: CaHeader,
  payload: Uint8Array,
  notify: boolean,
): DecodePutResult {
  if (!isValidDbrType(h.dataType)) {
    return { error: ECA.BADTYPE, message: `invalid DBR type ${h.dataType}` };
  }
  if (!pv.writable) return { error: ECA.NOWTACCESS, message: `${pv.name} is read-only` };
  // More elements than the PV holds is refused, as on every other path (Pv.write) and as libca
  // itself refuses it, rather than cut silently.
  if (h.count > pv.count) {
    const message = `${h.count} elements, at most ${pv.count} fit in ${pv.name}`;
    return { error: ECA.BADCOUNT, message };
  }
  return decodePut(h.dataType, h.count, payload, pv, notify);
}

/**
 * `decodeWrite` of the payload at bytes[off, off + h.payloadSize): a number when the common write
 * was decoded in place (no allocation), else decodeWrite's result.
 */
export function decodeWriteAt(
  pv: Pv,
  h: CaHeader,
  bytes: Uint8Array,
  off: number,
  notify: boolean,
): number | DecodePutResult {
  if (pv.writable) {
    const n = decodePlainScalarAt(h.dataType, h.count, bytes, off, h.payloadSize, pv);
    if (n !== null) return n;
  }
  return decodeWrite(pv, h, bytes.subarray(off, off + h.payloadSize), notify);
}

/** The ECA status of a write's outcome. */
export function writeStatus(error: PvWriteError | null): number {
  if (error === null) return ECA.NORMAL;
  return error.code === "readonly" ? ECA.NOWTACCESS : ECA.PUTFAIL;
}

/** Who is told when a ChannelWrite completes (ChannelRequests). */
export interface WriteOwner {
  writeCompleted(w: ChannelWrite, error: PvWriteError | null): void;
}

/** One write of a channel between its start and its answer: what the answer needs. */
export class ChannelWrite implements WriteWaiter {
  owner: WriteOwner | null = null;
  ch: Channel | null = null;
  /** A copy of the request header (the reader's is reused for the next message). */
  readonly h: CaHeader = { command: 0, payloadSize: 0, dataType: 0, count: 0, p1: 0, p2: 0 };
  ext = false;
  notify = false;
  value: PvValue = 0;
  /** The PV's value before the write (the audit record's "old"). */
  old: PvValue = 0;
  /** True until the PV's startWrite returned: a completion then is synchronous. */
  sync = true;
  /** Whether the value was visible (posted by the handler) when the write started. */
  visible = false;

  writeCompleted(error: PvWriteError | null): void {
    this.owner?.writeCompleted(this, error);
  }
}

// Records of answered writes, reused (bounded: a burst past this allocates the rest).
const pool: ChannelWrite[] = [];
const POOL_MAX = 4096;

/** A write record for `ch`'s request `h`. */
export function takeWrite(
  owner: WriteOwner,
  ch: Channel,
  h: CaHeader,
  ext: boolean,
  notify: boolean,
  value: PvValue,
): ChannelWrite {
  const w = pool.pop() ?? new ChannelWrite();
  w.owner = owner;
  w.ch = ch;
  const c = w.h;
  c.command = h.command;
  c.payloadSize = h.payloadSize;
  c.dataType = h.dataType;
  c.count = h.count;
  c.p1 = h.p1;
  c.p2 = h.p2;
  w.ext = ext;
  w.notify = notify;
  w.value = value;
  w.old = ch.pv.value;
  w.sync = true;
  w.visible = false;
  return w;
}

/** Gives a completed write's record back (nothing of the channel or values is kept). */
export function releaseWrite(w: ChannelWrite): void {
  w.owner = null;
  w.ch = null;
  w.value = 0;
  w.old = 0;
  if (pool.length < POOL_MAX) pool.push(w);
}
