/**
 * DBR layouts: the type codes 0–38 of db_access.h, the byte size and value offset of each DBR
 * structure, string field sizes and the EPICS epoch. The one home of these facts: the server's
 * codec (big-endian wire form) and the ffi/ client (libca's host-order structs, same offsets)
 * both import them from here. A leaf module: it imports nothing, so anything may depend on it.
 * See docs/ca-protocol-facts.md "DBR types".
 */

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
/** Number of DBR type codes (the length of the layout tables). */
export const DBR_TYPE_COUNT = LAST_DBR_TYPE + 1;

/** MAX_STRING_SIZE: bytes of one DBR_STRING element incl. NUL. */
export const MAX_STRING_SIZE = 40;
/** MAX_UNITS_SIZE: bytes of the units field incl. NUL. */
export const MAX_UNITS_SIZE = 8;
/** MAX_ENUM_STRING_SIZE: bytes of one enum state string incl. NUL. */
export const MAX_ENUM_STRING_SIZE = 26;
/** MAX_ENUM_STATES: enum state strings in GR/CTRL_ENUM. */
export const MAX_ENUM_STATES = 16;
/** POSIX seconds at the EPICS epoch (1990-01-01T00:00:00Z); TIME stamps count from it. */
export const EPICS_EPOCH_OFFSET = 631152000;

/** Element kinds of DBR values (the "family": type code mod 7 for codes 0–34). */
export const ELEM = {
  STRING: 0,
  SHORT: 1,
  FLOAT: 2,
  ENUM: 3,
  CHAR: 4,
  LONG: 5,
  DOUBLE: 6,
} as const;

/** Bytes per value element, by element kind (ELEM). */
export const ELEM_SIZE: readonly number[] = [MAX_STRING_SIZE, 2, 4, 2, 1, 4, 8];

/** dbr_value_offset[]: offset of the first value element in each DBR structure. */
// biome-ignore format: one row per DBR form reads like db_access.h
export const DBR_VALUE_OFFSET: readonly number[] = [
  // plain
  0, 0, 0, 0, 0, 0, 0,
  // STS: status, severity, [pad], value
  4, 4, 4, 4, 5, 4, 8,
  // TIME: status, severity, stamp(8), [pad], value
  12, 14, 12, 14, 15, 12, 16,
  // GR: status, severity, [precision, pad], units[8], six limits, [pad], value
  4, 24, 40, 422, 19, 36, 64,
  // CTRL: as GR plus the two control limits (CTRL_STRING is the STS layout)
  4, 28, 48, 422, 21, 44, 80,
  // PUT_ACKT, PUT_ACKS, STSACK_STRING (status, severity, ackt, acks, value), CLASS_NAME
  0, 0, 8, 0,
];

/** dbr_size[]: size of the structure holding one element (C padding included). */
// biome-ignore format: one row per DBR form reads like db_access.h
export const DBR_SIZE: readonly number[] = [
  40, 2, 4, 2, 1, 4, 8,
  44, 6, 8, 6, 6, 8, 16,
  52, 16, 16, 16, 16, 16, 24,
  44, 26, 44, 424, 20, 40, 72,
  44, 30, 52, 424, 22, 48, 88,
  2, 2, 48, 40,
];

/** Whether `t` is a DBR type code (0..38). */
export function isValidDbrType(t: number): boolean {
  return Number.isInteger(t) && t >= 0 && t <= LAST_DBR_TYPE;
}

/** Element kind (ELEM) of a DBR type's value part. */
export function dbrElementKind(t: number): number {
  if (t <= DBR.CTRL_DOUBLE) return t % 7;
  if (t === DBR.PUT_ACKT || t === DBR.PUT_ACKS) return ELEM.ENUM;
  return ELEM.STRING;
}

/** Byte offset of the first value element inside a DBR structure. */
export function dbrValueOffset(t: number): number {
  return DBR_VALUE_OFFSET[t] ?? 0;
}

/** Bytes per value element of a DBR type (dbr_value_size). */
export function dbrElementSize(t: number): number {
  return ELEM_SIZE[dbrElementKind(t)] ?? 1;
}

/** dbr_value_size[]: size of one value element of each DBR type. */
export const DBR_VALUE_SIZE: readonly number[] = DBR_SIZE.map((_, t) => dbrElementSize(t));

/** Unpadded payload size for `count` elements (dbr_size_n: a count ≤ 1 counts as 1). */
export function dbrPayloadSize(dbrType: number, count: number): number {
  const base = DBR_SIZE[dbrType] ?? 0;
  return count <= 1 ? base : base + (count - 1) * dbrElementSize(dbrType);
}
