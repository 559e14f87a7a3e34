/**
 * Access security settings from the environment: IOCMNG_ACF names the access security file (it
 * wins over the server config file's `access_security_file`), EPICS_CAS_USE_HOST_NAMES says
 * whether host access groups match the host name a client sends (YES, the default, as rsrv) or the
 * client's IP address (NO: rsrv's asCheckClientIP=1, for sites that do not trust clients).
 */
import type { HostMode } from "./rules.ts";

export class AccessConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AccessConfigError";
  }
}

export interface AccessSettings {
  /** The access security file, or undefined (access security off). */
  file: string | undefined;
  hostMode: HostMode;
}

/** Reads the settings; `fileFromConfig` is the config file's `access_security_file`, if any. */
export function accessSettings(
  env: Record<string, string | undefined>,
  fileFromConfig?: string | null,
): AccessSettings {
  const raw = env.IOCMNG_ACF?.trim();
  const file = raw ? raw : (fileFromConfig ?? undefined);
  const names = env.EPICS_CAS_USE_HOST_NAMES?.trim().toUpperCase();
  let hostMode: HostMode = "names";
  if (names === "NO" || names === "FALSE" || names === "0") hostMode = "addresses";
  else if (
    names !== undefined &&
    names !== "" &&
    names !== "YES" &&
    names !== "TRUE" &&
    names !== "1"
  ) {
    throw new AccessConfigError(
      `EPICS_CAS_USE_HOST_NAMES must be YES or NO, got "${env.EPICS_CAS_USE_HOST_NAMES}"`,
    );
  }
  return { file, hostMode };
}
