/**
 * Client writes (WRITE, WRITE_NOTIFY) of one channel: checking and decoding the request, then
 * running the PV's write with completion, in order per channel.
 */
import type { Pv } from "../../pv/pv.ts";
import { type PvValue, PvWriteError, type WriteContext } from "../../pv/types.ts";
import { ECA } from "../codec/constants.ts";
import { type DecodePutResult, decodePut } from "../codec/dbr-decode.ts";
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
  return decodePut(h.dataType, h.count, payload, pv, notify);
}

/** Told once when a write settles: ECA_NORMAL and null, or the failure's status and reason. */
export type WriteSettled = (eca: number, reason: string | null) => void;

/**
 * Runs `value` through the PV's write (checks, the plugin's handler, the post) and calls `settled`
 * with the outcome — at once when nothing is pending and the write completes synchronously (no
 * handler). Writes to one channel complete in order, like rsrv's one put at a time per channel: a
 * write starts when the previous one on the channel settled.
 */
export function startWrite(
  ch: Channel,
  value: PvValue,
  ctx: WriteContext,
  settled: WriteSettled,
): void {
  const fail = (e: unknown) => {
    const reason = e instanceof Error ? e.message : String(e);
    const readonly = e instanceof PvWriteError && e.code === "readonly";
    settled(readonly ? ECA.NOWTACCESS : ECA.PUTFAIL, reason);
  };
  const done = () => {
    ch.pendingWrites--;
    if (ch.pendingWrites === 0) ch.writeTail = null;
  };
  const onOk = () => {
    done();
    settled(ECA.NORMAL, null);
  };
  const onFail = (e: unknown) => {
    done();
    fail(e);
  };
  if (ch.writeTail === null) {
    let pending: Promise<void> | null;
    try {
      pending = ch.pv.beginWrite(value, ctx);
    } catch (e) {
      fail(e);
      return;
    }
    if (pending === null) {
      settled(ECA.NORMAL, null);
      return;
    }
    ch.pendingWrites++;
    ch.writeTail = pending.then(onOk, onFail);
    return;
  }
  ch.pendingWrites++;
  ch.writeTail = ch.writeTail.then(() => ch.pv.write(value, ctx).then(onOk, onFail));
}
