/**
 * Channel Access protocol constants (caProto.h, caerr.h, db_access.h). Numbers are the wire values;
 * docs/ca-protocol-facts.md says where each is used. DBR type codes and layouts live in
 * dbr-layout.ts.
 */

/** Protocol minor version we speak (CA 4.13: count 0 = dynamic array size). */
export const CA_MINOR_VERSION = 13;

/** Size of the standard message header. */
export const HEADER_SIZE = 16;
/** Size of the extended (large payload) message header. */
export const EXTENDED_HEADER_SIZE = 24;
/** rsrv caps an ERROR message's payload (header copy + text) at this many bytes. */
export const MAX_ERROR_PAYLOAD = 512;
/** rsrv's UDP reply datagram limit. */
export const MAX_UDP_SEND = 1024;

/** Command codes (m_cmmd). */
export const CMD = {
  VERSION: 0,
  EVENT_ADD: 1,
  EVENT_CANCEL: 2,
  READ: 3,
  WRITE: 4,
  SNAPSHOT: 5,
  SEARCH: 6,
  BUILD: 7,
  EVENTS_OFF: 8,
  EVENTS_ON: 9,
  READ_SYNC: 10,
  ERROR: 11,
  CLEAR_CHANNEL: 12,
  RSRV_IS_UP: 13,
  NOT_FOUND: 14,
  READ_NOTIFY: 15,
  READ_BUILD: 16,
  REPEATER_CONFIRM: 17,
  CREATE_CHAN: 18,
  WRITE_NOTIFY: 19,
  CLIENT_NAME: 20,
  HOST_NAME: 21,
  ACCESS_RIGHTS: 22,
  ECHO: 23,
  REPEATER_REGISTER: 24,
  SIGNAL: 25,
  CREATE_CH_FAIL: 26,
  SERVER_DISCONN: 27,
} as const;

/** Command names by code, for logs. */
export const CMD_NAME: readonly string[] = Object.entries(CMD)
  .sort((a, b) => a[1] - b[1])
  .map(([k]) => k);

/** ECA status codes (caerr.h): (msgNo << 3) | severity. */
export const ECA = {
  NORMAL: 1,
  ALLOCMEM: 48,
  TOLARGE: 72,
  TIMEOUT: 80,
  BADTYPE: 114,
  INTERNAL: 142,
  GETFAIL: 152,
  PUTFAIL: 160,
  BADCOUNT: 176,
  BADSTR: 186,
  DISCONN: 192,
  DBLCHNL: 200,
  EVDISALLOW: 210,
  BADMONID: 242,
  DEFUNCT: 278,
  BADMASK: 330,
  IODONE: 339,
  IOINPROGRESS: 347,
  BADSYNCGRP: 354,
  PUTCBINPROG: 362,
  NORDACCESS: 368,
  NOWTACCESS: 376,
  ANACHRONISM: 386,
  NOSEARCHADDR: 392,
  NOCONVERT: 400,
  BADCHID: 410,
  BADFUNCPTR: 418,
  ISATTACHED: 424,
  UNAVAILINSERV: 432,
  CHANDESTROY: 440,
  BADPRIORITY: 450,
  NOTTHREADED: 458,
  ARRAY16K: 464,
  CONNSEQTMO: 472,
  UNRESPTMO: 480,
} as const;

/** ACCESS_RIGHTS bits (p2 of ACCESS_RIGHTS). */
export const ACCESS = { READ: 1, WRITE: 2 } as const;

/** SEARCH reply flag in the request's data type field. */
export const SEARCH_REPLY = { DO_REPLY: 10, DONT_REPLY: 5 } as const;

/** The search reply's p1 meaning "use the datagram's source address". */
export const INADDR_ANY_REPLY = 0xffffffff;
