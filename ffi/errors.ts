/**
 * Typed Channel Access client errors. libca reports ECA status codes (caerr.h): the message number
 * sits above the 3 severity bits, so `eca >> 3` classifies the error independent of severity.
 */

/** ECA status codes the client distinguishes (values as libca returns them). */
export const ECA = {
  NORMAL: 1,
  TIMEOUT: 80,
  BADTYPE: 114,
  BADCOUNT: 176,
  DISCONN: 192,
  GETFAIL: 152,
  PUTFAIL: 160,
  NORDACCESS: 368,
  NOWTACCESS: 376,
  NOCONVERT: 400,
  TOLARGE: 72,
  BADCHID: 410,
  DISCONNCHID: 106,
} as const;

/** Message numbers (eca >> 3) used for classification. */
const MSG = {
  timeout: 10,
  badtype: 14,
  badcount: 22,
  disconn: 24,
  disconnchid: 13,
  nordaccess: 46,
  nowtaccess: 47,
  noconvert: 50,
} as const;

/** Base class of every client error; `eca` is the libca status code (0 when none applies). */
export class CaError extends Error {
  constructor(
    message: string,
    readonly eca: number = 0,
  ) {
    super(message);
    this.name = "CaError";
  }
}

/** The operation (connect, get, put with completion) did not finish within its timeout. */
export class CaTimeoutError extends CaError {
  constructor(message: string, eca: number = ECA.TIMEOUT) {
    super(message, eca);
    this.name = "CaTimeoutError";
  }
}

/** The server refused read or write access to the channel. */
export class CaNoAccessError extends CaError {
  constructor(message: string, eca: number = ECA.NOWTACCESS) {
    super(message, eca);
    this.name = "CaNoAccessError";
  }
}

/** The channel disconnected while the operation was outstanding. */
export class CaDisconnectedError extends CaError {
  constructor(message: string, eca: number = ECA.DISCONN) {
    super(message, eca);
    this.name = "CaDisconnectedError";
  }
}

/** The value cannot be converted to the channel's type, or the element count is wrong. */
export class CaBadTypeError extends CaError {
  constructor(message: string, eca: number = ECA.BADTYPE) {
    super(message, eca);
    this.name = "CaBadTypeError";
  }
}

/** libca (or its C helper) could not be loaded on this host. */
export class CaLibraryError extends CaError {
  constructor(message: string) {
    super(message, 0);
    this.name = "CaLibraryError";
  }
}

/** Builds the typed error for a non-normal ECA status; `text` is libca's ca_message(). */
export function errorFromEca(eca: number, what: string, text: string): CaError {
  const msg = `${what}: ${text} (ECA ${eca})`;
  switch (eca >> 3) {
    case MSG.timeout:
      return new CaTimeoutError(msg, eca);
    case MSG.nordaccess:
    case MSG.nowtaccess:
      return new CaNoAccessError(msg, eca);
    case MSG.disconn:
    case MSG.disconnchid:
      return new CaDisconnectedError(msg, eca);
    case MSG.badtype:
    case MSG.badcount:
    case MSG.noconvert:
      return new CaBadTypeError(msg, eca);
    default:
      return new CaError(msg, eca);
  }
}
