/**
 * Channel Access protocol constants (caProto.h, caerr.h, db_access.h). Numbers are the wire values;
 * see shared/docs/ca-protocol.md for where each is used.
 */

/** Protocol minor version we speak (CA 4.13: count 0 = dynamic array size). */
export const CA_MINOR_VERSION = 13;
/** Default server port (UDP search + TCP circuits). */
export const CA_SERVER_PORT = 5064;
/** Default repeater port: beacon destination. */
export const CA_REPEATER_PORT = 5065;
/** POSIX seconds at the EPICS epoch (1990-01-01T00:00:00Z). */
export const EPICS_EPOCH_OFFSET = 631152000;

/** Size of the standard message header. */
export const HEADER_SIZE = 16;
/** Size of the extended (large payload) message header. */
export const EXTENDED_HEADER_SIZE = 24;
/** Largest payload size a standard header can carry (padded to 8). */
export const MAX_STANDARD_PAYLOAD = 0xfff8;
/** MAX_STRING_SIZE: bytes of one DBR_STRING element incl. NUL. */
export const MAX_STRING_SIZE = 40;
/** MAX_UNITS_SIZE: bytes of the units field incl. NUL. */
export const MAX_UNITS_SIZE = 8;
/** MAX_ENUM_STRING_SIZE: bytes of one enum state string incl. NUL. */
export const MAX_ENUM_STRING_SIZE = 26;
/** MAX_ENUM_STATES: enum state strings in GR/CTRL_ENUM. */
export const MAX_ENUM_STATES = 16;
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
export type Cmd = (typeof CMD)[keyof typeof CMD];

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

/** DBR type codes 0–38 (db_access.h). */
export const DBR = {
  STRING: 0,
  SHORT: 1,
  INT: 1,
  FLOAT: 2,
  ENUM: 3,
  CHAR: 4,
  LONG: 5,
  DOUBLE: 6,
  STS_STRING: 7,
  STS_SHORT: 8,
  STS_INT: 8,
  STS_FLOAT: 9,
  STS_ENUM: 10,
  STS_CHAR: 11,
  STS_LONG: 12,
  STS_DOUBLE: 13,
  TIME_STRING: 14,
  TIME_SHORT: 15,
  TIME_INT: 15,
  TIME_FLOAT: 16,
  TIME_ENUM: 17,
  TIME_CHAR: 18,
  TIME_LONG: 19,
  TIME_DOUBLE: 20,
  GR_STRING: 21,
  GR_SHORT: 22,
  GR_INT: 22,
  GR_FLOAT: 23,
  GR_ENUM: 24,
  GR_CHAR: 25,
  GR_LONG: 26,
  GR_DOUBLE: 27,
  CTRL_STRING: 28,
  CTRL_SHORT: 29,
  CTRL_INT: 29,
  CTRL_FLOAT: 30,
  CTRL_ENUM: 31,
  CTRL_CHAR: 32,
  CTRL_LONG: 33,
  CTRL_DOUBLE: 34,
  PUT_ACKT: 35,
  PUT_ACKS: 36,
  STSACK_STRING: 37,
  CLASS_NAME: 38,
} as const;

/** Highest valid DBR type code. */
export const LAST_DBR_TYPE = 38;

/** ACCESS_RIGHTS bits (p2 of ACCESS_RIGHTS). */
export const ACCESS = { READ: 1, WRITE: 2 } as const;

/** SEARCH reply flag in the request's data type field. */
export const SEARCH_REPLY = { DO_REPLY: 10, DONT_REPLY: 5 } as const;

/** Monitor event mask bits (caeventmask.h). */
export const DBE_MASK = { VALUE: 1, LOG: 2, ALARM: 4, PROPERTY: 8 } as const;

/** The search reply's p1 meaning "use the datagram's source address". */
export const INADDR_ANY_REPLY = 0xffffffff;
