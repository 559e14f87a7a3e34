/**
 * Answers written into a circuit's send queue in the form the client's protocol version takes:
 * read replies, monitor updates, write completions and ERROR messages. The circuit decides *what*
 * to answer; this file knows how each answer is laid out (and writes the hot ones in place).
 */
import type { Pv } from "../../pv/pv.ts";
import { ACCESS, CMD, ECA } from "../codec/constants.ts";
import { encodePlainScalarInto } from "../codec/dbr-encode.ts";
import { type CaHeader, headerSizeFor, writeStandardHeader } from "../codec/header.ts";
import {
  encodeError,
  encodeReadReply,
  encodeWriteNotifyReply,
  writeEventUpdateHeader,
} from "../codec/messages.ts";
import { requestIoid } from "../codec/requests.ts";
import type { Subscription } from "./channel.ts";
import { type Encoded, zeroPayload } from "./fanout.ts";
import type { SendQueue } from "./send-queue.ts";

const NO_READ_ACCESS: Encoded = { error: ECA.NORDACCESS };

export class Replies {
  /** Whether the client takes extended headers (minor version ≥ 9); the circuit keeps it current. */
  extOk = false;

  constructor(private readonly q: SendQueue<Subscription>) {}

  /** ERROR naming channel `cid` (or none), with a copy of the offending request and a text. */
  error(cid: number, eca: number, h: CaHeader, ext: boolean, text: string): void {
    this.q.append(encodeError(cid, eca, h, ext, text));
  }

  /** Runs `write`; a reply too big for a client < 4.9 (RangeError) becomes ECA_ARRAY16K instead. */
  safe(h: CaHeader, ext: boolean, cid: number, write: () => void): void {
    try {
      write();
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      this.error(cid, ECA.ARRAY16K, h, ext, "reply needs the large-array protocol (CA ≥ 4.9)");
    }
  }

  /** READ_NOTIFY (or the old READ) reply carrying an encoded value, or a failed get's status. */
  read(h: CaHeader, ext: boolean, cid: number, enc: Encoded, notify: boolean): void {
    const ioid = requestIoid(h);
    const q = this.q;
    this.safe(h, ext, cid, () => {
      if ("error" in enc) {
        const zeros = zeroPayload(h.dataType, h.count);
        q.appendWithPayload(
          CMD.READ_NOTIFY,
          h.dataType,
          h.count,
          enc.error,
          ioid,
          zeros,
          this.extOk,
        );
      } else if (notify) {
        const { count, payload } = enc;
        q.appendWithPayload(
          CMD.READ_NOTIFY,
          h.dataType,
          count,
          ECA.NORMAL,
          ioid,
          payload,
          this.extOk,
        );
      } else {
        q.append(encodeReadReply(h.dataType, enc.count, cid, ioid, enc.payload, this.extOk));
      }
    });
  }

  /**
   * READ_NOTIFY reply of a plain numeric type of a scalar PV (a connect storm's gets), encoded
   * straight into the send buffer: no payload allocation, no copy. False: use `read`.
   */
  readScalarInPlace(pv: Pv, h: CaHeader): boolean {
    const q = this.q;
    q.reserve(24);
    const o = q.len;
    if (!encodePlainScalarInto(pv, h.dataType, q.out, o + 16)) return false;
    // Runs once per get of a scalar (10,000 times in a connect storm): no header object.
    const ioid = requestIoid(h);
    writeStandardHeader(q.view, o, CMD.READ_NOTIFY, 8, h.dataType, 1, ECA.NORMAL, ioid);
    q.len = o + 24;
    return true;
  }

  /** WRITE_NOTIFY completion. */
  writeNotify(dataType: number, count: number, eca: number, ioid: number): void {
    this.q.append(encodeWriteNotifyReply(dataType, count, eca, ioid));
  }

  /**
   * A monitor update with the subscription's current value: the encoded payload (shared by every
   * subscriber) copied behind this subscription's header. False when it needs the extended header
   * and the client is older than 4.9 (nothing written).
   */
  update(sub: Subscription): boolean {
    // Without read access a monitor carries ECA_NORDACCESS and no value, as rsrv sends it.
    const enc =
      sub.channel.rights & ACCESS.READ
        ? sub.channel.entry.encode(sub.dbrType, sub.count)
        : NO_READ_ACCESS;
    let payload: Uint8Array;
    let count: number;
    let status: number;
    if ("error" in enc) {
      payload = zeroPayload(sub.dbrType, sub.count);
      count = sub.count;
      status = enc.error;
    } else {
      payload = enc.payload;
      count = enc.count;
      status = ECA.NORMAL;
    }
    const hs = headerSizeFor(payload.length, count);
    if (hs === 24 && !this.extOk) return false;
    const q = this.q;
    q.reserve(hs + payload.length);
    writeEventUpdateHeader(q.view, q.len, sub.dbrType, count, status, sub.id, payload.length, true);
    q.out.set(payload, q.len + hs);
    q.len += hs + payload.length;
    return true;
  }
}
