/**
 * The IOCMNG_* variables of iocmng 2.7.9 that our own configuration does not read (docs/compat-2.7.9.md,
 * "Environment variables"): each is honoured or refused with a message saying what to do. The rest (IOCMNG_CONFIG,
 * IOCMNG_BEAMLINE_CONFIG, IOCMNG_PLUGINS_DIR, IOCMNG_PREFIX, IOCMNG_HOST, IOCMNG_PORT,
 * IOCMNG_LOG_LEVEL, IOCMNG_DISABLE_OPHYD) are read by src/config.ts; IOCMNG_PLUGINS_CONFIG by the
 * boot list. New here: IOCMNG_CORS_ORIGINS and IOCMNG_LOCAL_PATH_ROOTS.
 */
import { isAbsolute, resolve } from "node:path";
import { type CorsOrigins, parseCorsOrigins } from "../api/cors.ts";

/** What the 2.7.9 variables ask for, after checking. */
export interface CompatEnv {
  cors: CorsOrigins;
  /** Directories under which `local_path` may point (empty: local_path refused). */
  localPathRoots: string[];
  /** Path of the 2.7.9 boot list, when given. */
  pluginsConfig: string | null;
  /** Things worth a log line at startup. */
  warnings: string[];
}

/** Checks the variables; throws one Error listing every refused one. */
export function readCompatEnv(env: Record<string, string | undefined>): CompatEnv {
  const errors: string[] = [];
  const warnings: string[] = [];
  const soft = env.IOCMNG_ENABLE_SOFTIOC?.trim().toLowerCase();
  if (soft !== undefined && soft !== "" && soft !== "true") {
    errors.push(
      `IOCMNG_ENABLE_SOFTIOC=${env.IOCMNG_ENABLE_SOFTIOC}: running plugins without serving their PVs is not supported (iocmng always serves them); unset it`,
    );
  }
  const pva = env.IOCMNG_PVA?.trim().toLowerCase();
  if (pva !== undefined && pva !== "" && pva !== "false") {
    warnings.push(
      `IOCMNG_PVA=${env.IOCMNG_PVA}: links and the /pvs proxy use Channel Access (the PVA client is not available yet); PVs served over PVA by an IOC are reachable over CA too when the IOC serves both`,
    );
  }
  let cors: CorsOrigins = null;
  try {
    cors = parseCorsOrigins(env.IOCMNG_CORS_ORIGINS);
  } catch (e) {
    errors.push((e as Error).message);
  }
  const localPathRoots: string[] = [];
  for (const raw of (env.IOCMNG_LOCAL_PATH_ROOTS ?? "").split(":")) {
    const p = raw.trim();
    if (p === "") continue;
    if (!isAbsolute(p)) errors.push(`IOCMNG_LOCAL_PATH_ROOTS: "${p}" is not an absolute path`);
    else localPathRoots.push(resolve(p));
  }
  const pc = env.IOCMNG_PLUGINS_CONFIG?.trim();
  if (errors.length > 0) throw new Error(errors.join("; "));
  return { cors, localPathRoots, pluginsConfig: pc ? pc : null, warnings };
}
