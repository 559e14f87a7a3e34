/**
 * One log line per request: method, path, status and duration — never the body (it may hold a
 * token). Mutating requests at info level, reads at debug.
 */
import { Elysia } from "elysia";
import type { Logger } from "pino";
import { MUTATING } from "./auth.ts";

/** The request-log plugin; use it first so that refused requests (401, 413) are timed too. */
export function requestLog(log: Logger | undefined) {
  const started = new WeakMap<Request, number>();
  return new Elysia()
    .onRequest(({ request }) => {
      started.set(request, performance.now());
    })
    .onAfterResponse({ as: "global" }, ({ request, set }) => {
      if (log === undefined) return;
      const t0 = started.get(request);
      const ms = t0 === undefined ? undefined : Math.round(performance.now() - t0);
      const path = new URL(request.url).pathname;
      const entry = { method: request.method, path, status: set.status, ms };
      if (MUTATING.has(request.method)) log.info(entry, "request");
      else log.debug(entry, "request");
    });
}
