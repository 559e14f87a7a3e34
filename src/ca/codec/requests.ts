/**
 * What the generic header fields of a client request mean, command by command (caProto.h; see
 * docs/ca-protocol-facts.md "Requests"). Handlers read `requestSid(h)` rather than `h.p1`, so a
 * reader sees which field is which. Plain functions over the header that MessageReader.read()
 * fills and reuses: the JIT inlines them, nothing is allocated on the hot paths.
 */
import { CMD, SEARCH_REPLY } from "./constants.ts";
import type { CaHeader } from "./header.ts";

/** Server id of the channel a request is about (READ*, WRITE*, EVENT_ADD/CANCEL, CLEAR_CHANNEL). */
export function requestSid(h: CaHeader): number {
  return h.p1;
}

/** The client's I/O id of READ, READ_NOTIFY or WRITE_NOTIFY, echoed in the reply. */
export function requestIoid(h: CaHeader): number {
  return h.p2;
}

/** The client's subscription id of EVENT_ADD / EVENT_CANCEL. */
export function subscriptionId(h: CaHeader): number {
  return h.p2;
}

/** CREATE_CHAN: the client's id for the new channel. */
export function createChanCid(h: CaHeader): number {
  return h.p1;
}

/** CREATE_CHAN: the client's minor protocol version (clients ≥ 4.4 send it here too). */
export function createChanMinor(h: CaHeader): number {
  return h.p2;
}

/** VERSION: the client's minor protocol version. */
export function versionMinor(h: CaHeader): number {
  return h.count;
}

/** VERSION: the circuit priority (0–99). */
export function versionPriority(h: CaHeader): number {
  return h.dataType;
}

/** SEARCH: the client's search id (sent in both p1 and p2; the reply echoes it). */
export function searchId(h: CaHeader): number {
  return h.p2;
}

/** SEARCH: whether the client asks for a NOT_FOUND answer when the name is not served. */
export function searchWantsNotFound(h: CaHeader): boolean {
  return h.dataType === SEARCH_REPLY.DO_REPLY;
}

/** Whether a command names its channel by server id in p1 (so an ERROR can name the CID). */
export function namesChannelBySid(command: number): boolean {
  return (
    command === CMD.EVENT_ADD ||
    command === CMD.EVENT_CANCEL ||
    command === CMD.READ ||
    command === CMD.READ_NOTIFY ||
    command === CMD.WRITE ||
    command === CMD.WRITE_NOTIFY
  );
}

/**
 * EVENT_ADD's event mask: a u16 at byte 12 of its 16-byte payload (after three unused floats).
 * Returns -1 when the payload is too short to hold it.
 */
export function eventAddMask(
  bytes: Uint8Array,
  payloadOffset: number,
  payloadSize: number,
): number {
  if (payloadSize < 14) return -1;
  const o = payloadOffset + 12;
  return ((bytes[o] as number) << 8) | (bytes[o + 1] as number);
}
