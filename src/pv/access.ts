/**
 * What a protocol server (Channel Access, pvAccess, PV Web Socket) asks of access security, and
 * nothing more: who a client is, what it may do with a PV, when that may have changed, and where
 * a write's outcome is recorded. `src/access` implements it (EPICS access security files and the
 * audit trail); protocol servers depend on this interface only, so every protocol applies the
 * same rules and records writes the same way.
 */
import type { Pv } from "./pv.ts";

/** Who a client is, as access rules see it: user name and host (a name or an IPv4 address). */
export interface ClientIdentity {
  readonly user: string;
  readonly host: string;
}

/** Rights bits, numbered as CA's ACCESS_RIGHTS (pvAccess uses the same two). */
export const RIGHTS = { READ: 1, WRITE: 2 } as const;

/** How a write ended, for the audit trail. */
export interface WriteRecord {
  pv: Pv;
  /** The protocol or interface: "ca", "pva", "pvws", "rest", … */
  via: string;
  who: ClientIdentity;
  /** The value before the write (as the PV held it) and the value asked for. */
  old: unknown;
  value: unknown;
  result: "ok" | "denied" | "failed";
  reason?: string | undefined;
}

export interface AccessPolicy {
  /**
   * The identity of a client that announced `user` and `host` and connected from `peerIp`
   * (which of host and address counts is the policy's choice: EPICS_CAS_USE_HOST_NAMES).
   */
  identify(user: string, host: string, peerIp: string): ClientIdentity;
  /** RIGHTS bits `who` has on `pv` now (before the PV's own read-only flag is applied). */
  rights(pv: Pv, who: ClientIdentity): number;
  /** Calls `cb` whenever rights may have changed (reload, a CALC input changed). */
  onChange(cb: () => void): () => void;
  /** Records one write's outcome (done, refused by access security, or failed). */
  recordWrite(rec: WriteRecord): void;
}
