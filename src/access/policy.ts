/**
 * The AccessPolicy protocol servers use (src/pv/access.ts), made of the access security service
 * (decisions) and the audit trail (records). A PV's group is its `asg` (DEFAULT when unset or not
 * in the file) and its level 0 (a PV is what a record's VAL field is: an operator's value).
 */
import type { AccessPolicy, ClientIdentity, WriteRecord } from "../pv/access.ts";
import type { Pv } from "../pv/pv.ts";
import type { AuditLog, AuditVia } from "./audit.ts";
import { caRights } from "./rules.ts";
import type { AccessSecurity } from "./security.ts";

const VIAS = new Set<string>(["ca", "pva", "pvws", "console", "rest", "internal"]);

export class SecurityPolicy implements AccessPolicy {
  constructor(
    readonly security: AccessSecurity,
    readonly audit: AuditLog | undefined,
    private readonly asgOf: (pv: Pv) => string | undefined = (pv) => pv.asg,
  ) {}

  identify(user: string, host: string, peerIp: string): ClientIdentity {
    return this.security.identify(user, host, peerIp);
  }

  rights(pv: Pv, who: ClientIdentity): number {
    return caRights(this.security.rightsFor(this.asgOf(pv), who, 0));
  }

  onChange(cb: () => void): () => void {
    return this.security.onChange(() => cb());
  }

  recordWrite(rec: WriteRecord): void {
    this.audit?.record({
      pv: rec.pv.name,
      via: (VIAS.has(rec.via) ? rec.via : "internal") as AuditVia,
      user: rec.who.user,
      host: rec.who.host,
      old: rec.old,
      new: rec.value,
      result: rec.result,
      reason: rec.reason,
    });
  }
}
