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

/** Told once when a write settles: ECA_NORMAL and null, or the failure's status and reason. */
export type WriteSettled = (eca: number, reason: string | null) => void;

/**
 * Runs `value` through the PV's write (checks, the plugin's handler, the post) and calls `settled`
 * with the outcome: at once when the write completes synchronously (no handler), else when the
 * handler answers. Returns true while the write is pending (later reads on the channel wait for
 * it: ChannelRequests and Circuit; writes to one PV complete in order: Pv.beginWrite).
 */
export function startWrite(
  pv: Pv,
  value: PvValue,
  ctx: WriteContext,
  settled: WriteSettled,
): boolean {
  const fail = (e: unknown) => {
    const reason = e instanceof Error ? e.message : String(e);
    const readonly = e instanceof PvWriteError && e.code === "readonly";
    settled(readonly ? ECA.NOWTACCESS : ECA.PUTFAIL, reason);
  };
  let pending: Promise<void> | null;
  try {
    pending = pv.beginWrite(value, ctx);
  } catch (e) {
    fail(e);
    return false;
  }
  if (pending === null) {
    settled(ECA.NORMAL, null);
    return false;
  }
  pending.then(() => settled(ECA.NORMAL, null), fail);
  return true;
}
