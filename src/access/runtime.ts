/**
 * Access security as the server runs it: the service (file, reload, INP inputs), the audit trail
 * and the policy the protocol servers call, built from the server configuration, plus SIGHUP as
 * the reload signal (as `kill -HUP` reloads many daemons; rsrv has asInit from the shell instead).
 */
import type { Logger } from "pino";
import type { PvSource } from "../pv/source.ts";
import { AuditLog } from "./audit.ts";
import { SecurityPolicy } from "./policy.ts";
import type { HostMode } from "./rules.ts";
import { AccessSecurity } from "./security.ts";

export interface AccessOptions {
  /** The access security file; null/undefined = access security off (audit still on). */
  file?: string | null | undefined;
  hostMode?: HostMode | undefined;
  /** Entries kept per plugin in the audit trail. */
  auditPerPlugin?: number | undefined;
}

export interface AccessRuntime {
  security: AccessSecurity;
  audit: AuditLog;
  policy: SecurityPolicy;
  /** Tells the audit trail which plugin a PV belongs to (set once the controller exists). */
  setPluginOf(fn: (pv: string) => string | undefined): void;
  /** Reloads the file on SIGHUP; returns the function that removes the handler. */
  installSighup(): () => void;
  close(): void;
}

/**
 * Loads the access security file (a malformed one throws AcfError with line and column: the
 * server must not start on it) and builds the audit trail and the policy.
 */
export async function startAccess(
  opts: AccessOptions,
  source: PvSource,
  logger: Logger,
): Promise<AccessRuntime> {
  const log = logger.child({ component: "access" });
  const security = await AccessSecurity.open({
    file: opts.file ?? undefined,
    source,
    hostMode: opts.hostMode,
    log,
  });
  let pluginOf: (pv: string) => string | undefined = () => undefined;
  const audit = new AuditLog({
    log: logger.child({ component: "audit" }),
    perPlugin: opts.auditPerPlugin,
    pluginOf: (pv) => pluginOf(pv),
  });
  const policy = new SecurityPolicy(security, audit);
  return {
    security,
    audit,
    policy,
    setPluginOf(fn) {
      pluginOf = fn;
    },
    installSighup() {
      const onHup = () => {
        log.info({ file: security.file ?? null }, "SIGHUP: reloading the access security file");
        if (!security.enabled) {
          log.warn("SIGHUP: no access security file configured (IOCMNG_ACF); nothing to reload");
          return;
        }
        // reload() logs the outcome (loaded, or refused with line and column) itself.
        void security.reload();
      };
      process.on("SIGHUP", onHup);
      return () => process.off("SIGHUP", onHup);
    },
    close() {
      security.close();
    },
  };
}
