/**
 * A circuit's view of access security (src/pv/access.ts): its client's identity, the rights each
 * channel gets, and the audit record of each write. Without a policy a channel gets what its PV
 * allows (read, and write when writable) and nothing is recorded.
 */
import type { AccessPolicy, ClientIdentity } from "../../pv/access.ts";
import type { Pv } from "../../pv/pv.ts";
import type { PvValue } from "../../pv/types.ts";
import { ACCESS } from "../codec/constants.ts";

/** What the circuit knows of its client. */
export interface CircuitClient {
  readonly user: string;
  readonly host: string;
  /** Peer IPv4 address (no port). */
  readonly ip: string;
}

export class CircuitAccess {
  // Fixed at first use: a circuit's names are frozen once it created a channel (as in rsrv).
  private who: ClientIdentity | null = null;

  constructor(
    readonly policy: AccessPolicy | null,
    private readonly client: CircuitClient,
  ) {}

  /** The client as access rules see it (see AccessPolicy.identify). */
  identity(): ClientIdentity {
    if (this.who !== null) return this.who;
    const c = this.client;
    this.who =
      this.policy?.identify(c.user, c.host, c.ip) ?? ({ user: c.user, host: c.host } as const);
    return this.who;
  }

  /** ACCESS_RIGHTS bits for `pv`: the policy's, never more than the PV itself allows. */
  rightsOf(pv: Pv): number {
    const own = pv.writable ? ACCESS.READ | ACCESS.WRITE : ACCESS.READ;
    const p = this.policy;
    return p === null ? own : p.rights(pv, this.identity()) & own;
  }

  /** One audit record of a write's outcome (`value` undefined when it could not be decoded). */
  record(
    pv: Pv,
    value: PvValue | undefined,
    old: PvValue,
    result: "ok" | "denied" | "failed",
    reason?: string,
  ): void {
    const p = this.policy;
    if (p === null) return;
    p.recordWrite({ pv, via: "ca", who: this.identity(), old, value, result, reason });
  }
}
