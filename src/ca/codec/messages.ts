/**
 * Encoders for every message a CA server sends. Each returns a fresh Uint8Array holding the whole
 * message (header + zero-padded payload). Field placement follows rsrv
 * (docs/ca-protocol-facts.md, Requests).
 */
import {
  CA_MINOR_VERSION,
  CMD,
  EXTENDED_HEADER_SIZE,
  HEADER_SIZE,
  INADDR_ANY_REPLY,
  MAX_ERROR_PAYLOAD,
} from "./constants.ts";
import {
  type CaHeader,
  headerSizeFor,
  pad8,
  writeHeader,
  writeHeaderBytes,
  writeStandardHeader,
} from "./header.ts";

const textEncoder = new TextEncoder();

/** Builds a message from header fields and an optional payload (padded here if needed). */
export function encodeMessage(
  command: number,
  dataType: number,
  count: number,
  p1: number,
  p2: number,
  payload: Uint8Array | null = null,
  extendedAllowed = false,
): Uint8Array {
  const plen = payload === null ? 0 : payload.length;
  const padded = pad8(plen);
  const h: CaHeader = { command, payloadSize: padded, dataType, count, p1, p2 };
  const hs = headerSizeFor(padded, count);
  const out = new Uint8Array(hs + padded);
  writeHeaderBytes(out, 0, h, extendedAllowed);
  if (payload !== null) out.set(payload, hs);
  return out;
}

// Counts in payload-less replies are not read by libca; clamping keeps them in the 16-byte form.
function clampCount(count: number): number {
  return count >= 0xffff ? 0xfffe : count;
}

/** TCP VERSION, sent unprompted right after accept: dt 0, count = our minor version. */
export function encodeVersion(): Uint8Array {
  return encodeMessage(CMD.VERSION, 0, CA_MINOR_VERSION, 0, 0);
}

/** Writes the UDP VERSION prefix of a search reply (16 bytes), echoing the client's sequence number. */
export function writeUdpVersion(
  view: DataView,
  offset: number,
  seq: number,
  clientMinor: number,
): void {
  const valid = clientMinor >= 11;
  writeStandardHeader(
    view,
    offset,
    CMD.VERSION,
    0,
    valid ? 1 : 0,
    CA_MINOR_VERSION,
    valid ? seq : 0,
    0,
  );
}

/** UDP VERSION prefix of a search reply datagram, echoing the client's sequence number. */
export function encodeUdpVersion(seq: number, clientMinor: number): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE);
  writeUdpVersion(new DataView(out.buffer), 0, seq, clientMinor);
  return out;
}

/** Size of a SEARCH reply: header + 8-byte payload. */
export const SEARCH_REPLY_SIZE = HEADER_SIZE + 8;

/**
 * Writes a SEARCH reply (SEARCH_REPLY_SIZE bytes, every byte, so a reused buffer needs no
 * clearing): dt = TCP port, p1 = 0xFFFFFFFF (use sender address), payload u16 minor + 6 zeros.
 */
export function writeSearchReply(
  view: DataView,
  offset: number,
  tcpPort: number,
  searchId: number,
): void {
  writeStandardHeader(view, offset, CMD.SEARCH, 8, tcpPort, 0, INADDR_ANY_REPLY, searchId);
  view.setUint32(offset + HEADER_SIZE, CA_MINOR_VERSION << 16);
  view.setUint32(offset + HEADER_SIZE + 4, 0);
}

/** UDP SEARCH reply: dt = TCP port, p1 = 0xFFFFFFFF (use sender address), 8-byte minor payload. */
export function encodeSearchReply(tcpPort: number, searchId: number): Uint8Array {
  const out = new Uint8Array(SEARCH_REPLY_SIZE);
  writeSearchReply(new DataView(out.buffer), 0, tcpPort, searchId);
  return out;
}

/** NOT_FOUND: the search request header copied back with command 14 (TCP DO_REPLY searches only). */
export function encodeNotFound(search: CaHeader): Uint8Array {
  return encodeMessage(
    CMD.NOT_FOUND,
    search.dataType,
    clampCount(search.count),
    search.p1,
    search.p2,
  );
}

/** ACCESS_RIGHTS: p1 = CID, p2 = rights bits (1 read, 2 write). */
export function encodeAccessRights(cid: number, rights: number): Uint8Array {
  return encodeMessage(CMD.ACCESS_RIGHTS, 0, 0, cid, rights);
}

/**
 * CREATE_CHAN reply: native type and element count, p1 = CID, p2 = SID. Counts ≥ 0xFFFF use the
 * extended header; for clients that cannot take it the count is clamped to 0xFFFE like rsrv.
 */
export function encodeCreateChanReply(
  cid: number,
  sid: number,
  dbrType: number,
  count: number,
  extendedAllowed = true,
): Uint8Array {
  const c = extendedAllowed ? count : clampCount(count);
  return encodeMessage(CMD.CREATE_CHAN, dbrType, c, cid, sid, null, extendedAllowed);
}

/** CREATE_CH_FAIL: the name is unknown (p1 = CID). */
export function encodeCreateChFail(cid: number): Uint8Array {
  return encodeMessage(CMD.CREATE_CH_FAIL, 0, 0, cid, 0);
}

function withPayload(
  command: number,
  dbrType: number,
  count: number,
  p1: number,
  p2: number,
  payload: Uint8Array,
  extendedAllowed: boolean,
): Uint8Array {
  return encodeMessage(command, dbrType, count, p1, p2, payload, extendedAllowed);
}

/** READ_NOTIFY reply: p1 = ECA status, p2 = IOID, payload = DBR data (padded to 8). */
export function encodeReadNotifyReply(
  dbrType: number,
  count: number,
  status: number,
  ioid: number,
  payload: Uint8Array,
  extendedAllowed: boolean,
): Uint8Array {
  return withPayload(CMD.READ_NOTIFY, dbrType, count, status, ioid, payload, extendedAllowed);
}

/**
 * Deprecated READ reply: p1 = CID, p2 = IOID. A DBR_STRING of count 1 is shortened to strlen+1
 * (then padded), as rsrv does.
 */
export function encodeReadReply(
  dbrType: number,
  count: number,
  cid: number,
  ioid: number,
  payload: Uint8Array,
  extendedAllowed: boolean,
): Uint8Array {
  let body = payload;
  if (dbrType === 0 && count === 1) {
    let n = body.indexOf(0);
    if (n < 0 || n > 39) n = Math.min(body.length, 39);
    body = body.subarray(0, Math.min(n + 1, body.length));
  }
  return withPayload(CMD.READ, dbrType, count, cid, ioid, body, extendedAllowed);
}

/**
 * Monitor update: p1 = ECA status, p2 = subscription ID. The payload must not be empty: libca
 * takes an empty EVENT_ADD message for a cancel acknowledgement.
 */
export function encodeEventUpdate(
  dbrType: number,
  count: number,
  status: number,
  subId: number,
  payload: Uint8Array,
  extendedAllowed: boolean,
): Uint8Array {
  if (payload.length === 0) throw new RangeError("a monitor update must carry a payload");
  return withPayload(CMD.EVENT_ADD, dbrType, count, status, subId, payload, extendedAllowed);
}

/**
 * Writes just the header of a monitor update at `offset` (for copying a shared, already padded
 * payload behind it without allocating). Returns the header size written (16 or 24).
 */
export function writeEventUpdateHeader(
  view: DataView,
  offset: number,
  dbrType: number,
  count: number,
  status: number,
  subId: number,
  paddedPayloadSize: number,
  extendedAllowed: boolean,
): number {
  return writeHeader(
    view,
    offset,
    {
      command: CMD.EVENT_ADD,
      payloadSize: paddedPayloadSize,
      dataType: dbrType,
      count,
      p1: status,
      p2: subId,
    },
    extendedAllowed,
  );
}

/** EVENT_CANCEL acknowledgement: command 1 with no payload, p1 = SID, p2 = subscription ID. */
export function encodeEventCancelAck(
  dbrType: number,
  count: number,
  sid: number,
  subId: number,
): Uint8Array {
  return encodeMessage(CMD.EVENT_ADD, dbrType, clampCount(count), sid, subId);
}

/** WRITE_NOTIFY reply: p1 = ECA status, p2 = IOID, no payload. */
export function encodeWriteNotifyReply(
  dbrType: number,
  count: number,
  status: number,
  ioid: number,
): Uint8Array {
  return encodeMessage(CMD.WRITE_NOTIFY, dbrType, clampCount(count), status, ioid);
}

/**
 * ERROR: p1 = CID (0xFFFFFFFF when none), p2 = ECA status; payload = the offending header in the
 * form it arrived (16 or 24 bytes) + NUL-terminated text, capped at 512 bytes like rsrv.
 */
export function encodeError(
  cid: number,
  eca: number,
  offending: CaHeader,
  offendingExtended: boolean,
  text: string,
): Uint8Array {
  const hs = offendingExtended ? EXTENDED_HEADER_SIZE : HEADER_SIZE;
  let msg = textEncoder.encode(text);
  const room = MAX_ERROR_PAYLOAD - hs - 1;
  if (msg.length > room) msg = msg.subarray(0, room);
  const payload = new Uint8Array(hs + msg.length + 1);
  writeRawHeader(new DataView(payload.buffer), offending, offendingExtended);
  payload.set(msg, hs);
  return encodeMessage(CMD.ERROR, 0, 0, cid, eca, payload);
}

// Copies a header in the wire form it arrived in, even when its sizes would fit the other form.
function writeRawHeader(v: DataView, h: CaHeader, extended: boolean): void {
  v.setUint16(0, h.command & 0xffff);
  v.setUint16(4, h.dataType & 0xffff);
  v.setUint32(8, h.p1 >>> 0);
  v.setUint32(12, h.p2 >>> 0);
  if (extended) {
    v.setUint16(2, 0xffff);
    v.setUint16(6, 0);
    v.setUint32(16, h.payloadSize >>> 0);
    v.setUint32(20, h.count >>> 0);
  } else {
    v.setUint16(2, h.payloadSize & 0xffff);
    v.setUint16(6, h.count & 0xffff);
  }
}

/** SERVER_DISCONN: the channel's PV went away (p1 = CID); libca re-searches. */
export function encodeServerDisconn(cid: number): Uint8Array {
  return encodeMessage(CMD.SERVER_DISCONN, 0, 0, cid, 0);
}

/** CLEAR_CHANNEL reply: the request header copied back without payload. */
export function encodeClearChannelReply(h: CaHeader): Uint8Array {
  return encodeMessage(CMD.CLEAR_CHANNEL, h.dataType, clampCount(h.count), h.p1, h.p2);
}

/** ECHO reply: header and payload copied back verbatim. */
export function encodeEcho(h: CaHeader, payload: Uint8Array): Uint8Array {
  return encodeMessage(CMD.ECHO, h.dataType, h.count, h.p1, h.p2, payload, true);
}

/** READ_SYNC reply: the header copied back, no payload. */
export function encodeReadSync(h: CaHeader): Uint8Array {
  return encodeMessage(CMD.READ_SYNC, h.dataType, clampCount(h.count), h.p1, h.p2);
}

/** Beacon (RSRV_IS_UP): dt = minor version, count = TCP port, p1 = beacon ID, p2 = 0 (use sender). */
export function encodeBeacon(tcpPort: number, beaconId: number): Uint8Array {
  return encodeMessage(CMD.RSRV_IS_UP, CA_MINOR_VERSION, tcpPort, beaconId, 0);
}

/** The given messages back to back in one buffer (a datagram or a segment of several). */
export function concatMessages(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
