/**
 * Bearer-token authentication of mutating requests (POST, PUT, PATCH, DELETE) when the server has
 * IOCMNG_API_TOKEN; reads need none. Runs when the request arrives, before its body is read.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Elysia } from "elysia";

/** Methods that change something: they need the token. */
export const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** Constant-time token comparison: hashing first makes both sides the same length. */
export function tokenMatches(header: string | null, token: string): boolean {
  if (header === null) return false;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (m === null || m[1] === undefined) return false;
  const a = createHash("sha256").update(m[1]).digest();
  const b = createHash("sha256").update(token).digest();
  return timingSafeEqual(a, b);
}

/** The auth plugin: 401 with `WWW-Authenticate` for a mutating request without the token. */
export function bearerAuth(apiToken: string | null) {
  return new Elysia().onRequest(({ request, set }) => {
    if (apiToken === null || !MUTATING.has(request.method)) return;
    if (tokenMatches(request.headers.get("authorization"), apiToken)) return;
    set.status = 401;
    set.headers["www-authenticate"] = 'Bearer realm="iocmng"';
    return { ok: false, message: "missing or wrong bearer token (Authorization: Bearer <token>)" };
  });
}
