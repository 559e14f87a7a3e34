/**
 * How a circuit finds and opens channels — CREATE_CHAN (the name looked up by its bytes where they
 * lie), SEARCH over TCP — and how it re-sends ACCESS_RIGHTS when the access policy changes its
 * mind. The circuit keeps the connection and dispatch; this file keeps what naming a PV means.
 */
import { ACCESS, CMD } from "../codec/constants.ts";
import type { CaHeader } from "../codec/header.ts";
import { encodeNotFound, encodeSearchReply } from "../codec/messages.ts";
import { createChanCid, searchId, searchWantsNotFound } from "../codec/requests.ts";
import type { CircuitAccess } from "./access.ts";
import type { ChannelOwner, ChannelTable, Subscription } from "./channel.ts";
import type { FanoutSubscription } from "./fanout.ts";
import type { CircuitHost } from "./host.ts";
import type { Replies } from "./replies.ts";
import type { SendQueue } from "./send-queue.ts";

/** What opening channels needs of its circuit. */
export interface OpeningCircuit extends ChannelOwner {
  readonly srv: CircuitHost;
  readonly q: SendQueue<Subscription>;
  readonly reply: Replies;
  readonly table: ChannelTable;
  readonly access: CircuitAccess;
  warnOnce(key: string, msg: string): void;
  queueUpdate(sub: FanoutSubscription): void;
  scheduleFlush(): void;
}

/**
 * CREATE_CHAN, its name read in place from bytes[off, off + payloadSize) (no payload view):
 * ACCESS_RIGHTS then the reply, or CREATE_CH_FAIL. True when a channel was created.
 */
export function createChan(c: OpeningCircuit, h: CaHeader, bytes: Uint8Array, off: number) {
  const cid = createChanCid(h);
  const stop = off + h.payloadSize;
  // An indexed scan, not bytes.indexOf: `bytes` is a socket chunk (a Buffer, whose indexOf is
  // Buffer's own) or the reader's own Uint8Array when a message straddled two chunks, and a method
  // call that meets both keeps the optimised code of this path from settling (docs/ca-server.md).
  let nul = off;
  while (nul < stop && bytes[nul] !== 0) nul++;
  const len = nul - off;
  const cfg = c.srv.config;
  if (len > cfg.maxNameLength) {
    c.warnOnce("name", `PV name of ${len} bytes exceeds the limit of ${cfg.maxNameLength}`);
  }
  const entry = len === 0 || len > cfg.maxNameLength ? undefined : c.srv.lookup(bytes, off, nul);
  if (entry !== undefined && c.table.channelCount >= cfg.maxChannelsPerCircuit) {
    c.warnOnce("channels", `channel limit ${cfg.maxChannelsPerCircuit} per circuit reached`);
  } else if (entry !== undefined) {
    const pv = entry.pv;
    const ch = c.table.open(c, cid, entry);
    ch.rights = c.access.rightsOf(pv);
    const extOk = c.reply.extOk;
    c.q.appendHeader(CMD.ACCESS_RIGHTS, 0, 0, cid, ch.rights, extOk);
    // Older clients (< 4.9) cannot take the extended header: rsrv clamps the count to 0xFFFE.
    const count = extOk ? pv.count : Math.min(pv.count, 0xfffe);
    c.q.appendHeader(CMD.CREATE_CHAN, entry.nativeType, count, cid, ch.sid, extOk);
    return true;
  }
  c.q.appendHeader(CMD.CREATE_CH_FAIL, 0, 0, cid, 0, c.reply.extOk);
  return false;
}

/** SEARCH over TCP: the reply for a served name, NOT_FOUND only when the client asks for it. */
export function tcpSearch(c: OpeningCircuit, h: CaHeader, payload: Uint8Array): void {
  let end = payload.indexOf(0);
  if (end < 0) end = payload.length;
  const found =
    end > 0 && end <= c.srv.config.maxNameLength && c.srv.lookup(payload, 0, end) !== undefined;
  if (found) c.q.append(encodeSearchReply(c.srv.tcpPort, searchId(h)));
  else if (searchWantsNotFound(h)) c.q.append(encodeNotFound(h));
}

/**
 * Rights may have changed (reload, a CALC input): re-send ACCESS_RIGHTS for each channel whose
 * rights changed, as rsrv does, and the current value to the monitors of a channel that just
 * became readable.
 */
export function recheckAccess(c: OpeningCircuit): void {
  let sent = false;
  for (const ch of c.table.all()) {
    const r = c.access.rightsOf(ch.pv);
    if (r === ch.rights) continue;
    const gainedRead = (r & ACCESS.READ) !== 0 && (ch.rights & ACCESS.READ) === 0;
    ch.rights = r;
    c.q.appendHeader(CMD.ACCESS_RIGHTS, 0, 0, ch.cid, r, c.reply.extOk);
    sent = true;
    // Removed subscriptions keep their chNext (channel.ts), so the walk survives a drop.
    if (gainedRead) {
      for (let sub = ch.subHead; sub !== null; sub = sub.chNext) {
        if (sub.alive) c.queueUpdate(sub);
      }
    }
  }
  if (sent) c.scheduleFlush();
}
