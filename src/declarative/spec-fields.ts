/**
 * Field readers of the declarative config (spec.ts): each converts one YAML value as 2.7.9 did
 * (numbers from strings, 0/1 for booleans) and refuses anything else with the field's path.
 */

/** Invalid declarative config: `path` is the dotted field path (e.g. `rules[0].condition`). */
export class DeclarativeConfigError extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`${path}: ${detail}`);
    this.name = "DeclarativeConfigError";
  }
}

export type Raw = Record<string, unknown>;

export const isMap = (v: unknown): v is Raw =>
  v !== null && typeof v === "object" && !Array.isArray(v);

export function num(
  v: unknown,
  path: string,
  dflt: number,
  opts: { min?: number; int?: boolean } = {},
): number {
  if (v === undefined || v === null) return dflt;
  const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n))
    throw new DeclarativeConfigError(path, `expected a number, got ${JSON.stringify(v)}`);
  if (opts.int && !Number.isInteger(n))
    throw new DeclarativeConfigError(path, `expected an integer, got ${n}`);
  if (opts.min !== undefined && n < opts.min)
    throw new DeclarativeConfigError(path, `must be >= ${opts.min}, got ${n}`);
  return n;
}

export function bool(v: unknown, path: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === "boolean") return v;
  if (v === 0 || v === 1) return v === 1;
  throw new DeclarativeConfigError(path, `expected true or false, got ${JSON.stringify(v)}`);
}

export function text(v: unknown, path: string, dflt: string, max = 256): string {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "string" && typeof v !== "number")
    throw new DeclarativeConfigError(path, "expected a string");
  const s = String(v);
  if (s.length > max) throw new DeclarativeConfigError(path, `longer than ${max} characters`);
  return s;
}

export function oneOf<T extends string>(
  v: unknown,
  path: string,
  allowed: Record<string, T>,
  dflt: T,
): T {
  if (v === undefined || v === null || v === "") return dflt;
  const key = String(v).toLowerCase();
  const hit = allowed[key];
  if (hit === undefined) {
    throw new DeclarativeConfigError(
      path,
      `expected one of ${Object.keys(allowed).join(", ")}, got ${JSON.stringify(v)}`,
    );
  }
  return hit;
}
