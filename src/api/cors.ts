/**
 * CORS for browser clients on another origin (the epik8s dashboard calls the REST API straight
 * from the browser). Off unless IOCMNG_CORS_ORIGINS lists origins: `*` allows any origin (as
 * 2.7.9 always did), otherwise a comma-separated list of exact origins. A preflight (OPTIONS with
 * Access-Control-Request-Method) from an allowed origin is answered 204 before routing; other
 * origins get no CORS headers, so the browser blocks them.
 */
import { Elysia } from "elysia";

/** Parsed IOCMNG_CORS_ORIGINS: null when CORS is off. */
export type CorsOrigins = { any: true } | { any: false; list: ReadonlySet<string> } | null;

const ORIGIN_RE = /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/;

/** Parses IOCMNG_CORS_ORIGINS; throws with the offending entry when one is not an origin. */
export function parseCorsOrigins(value: string | undefined): CorsOrigins {
  const v = (value ?? "").trim();
  if (v === "") return null;
  if (v === "*") return { any: true };
  const list = new Set<string>();
  for (const raw of v.split(",")) {
    const o = raw.trim().replace(/\/$/, "");
    if (o === "") continue;
    if (!ORIGIN_RE.test(o)) {
      throw new Error(
        `IOCMNG_CORS_ORIGINS: "${o}" is not an origin (scheme://host[:port], e.g. https://dashboard.example.org), or use *`,
      );
    }
    list.add(o.toLowerCase());
  }
  return list.size === 0 ? null : { any: false, list };
}

const ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const MAX_AGE = "600";

/** The Elysia plugin; a no-op when `origins` is null. */
export function cors(origins: CorsOrigins) {
  const app = new Elysia({ name: "iocmng-cors" });
  if (origins === null) return app;
  const allowed = (origin: string | null): string | null => {
    if (origin === null) return null;
    if (origins.any) return origin;
    return origins.list.has(origin.toLowerCase()) ? origin : null;
  };
  return app
    .onRequest(({ request, set }) => {
      const origin = allowed(request.headers.get("origin"));
      if (origin === null) return;
      set.headers["access-control-allow-origin"] = origin;
      set.headers.vary = "Origin";
      set.headers["access-control-allow-credentials"] = "true";
      if (request.method === "OPTIONS" && request.headers.has("access-control-request-method")) {
        set.headers["access-control-allow-methods"] = ALLOW_METHODS;
        const asked = request.headers.get("access-control-request-headers");
        set.headers["access-control-allow-headers"] = asked ?? "content-type, authorization";
        set.headers["access-control-max-age"] = MAX_AGE;
        set.status = 204;
        return new Response(null, { status: 204, headers: set.headers as Record<string, string> });
      }
    })
    .as("global");
}
