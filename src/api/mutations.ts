/**
 * Who changed what through REST: every finished mutating request (POST, PUT, PATCH, DELETE) is
 * handed to `onMutation` with its caller — "token" when it carried the server's API token,
 * "anonymous" otherwise — and the peer address, for the audit trail (wired by src/server.ts).
 */
import { Elysia } from "elysia";
import { MUTATING, tokenMatches } from "./auth.ts";

/** One finished mutating request. */
export interface MutationRecord {
  method: string;
  /** URL path, e.g. /api/v1/tasks/mon/restart. */
  path: string;
  status: number;
  /** "token" (authenticated with IOCMNG_API_TOKEN) or "anonymous". */
  caller: string;
  /** Peer IP address ("" when unknown). */
  host: string;
  /** The parsed body (an add's `name`), when there was one. */
  body?: unknown;
}

export function mutationHook(
  apiToken: string | null,
  onMutation: ((m: MutationRecord) => void) | undefined,
) {
  // The peer address is read when the request arrives: after the response it may be gone.
  const peers = new WeakMap<Request, string>();
  return new Elysia()
    .onRequest(({ request, server }) => {
      if (onMutation === undefined || !MUTATING.has(request.method)) return;
      peers.set(request, server?.requestIP(request)?.address ?? "");
    })
    .onAfterResponse({ as: "global" }, ({ request, set, body }) => {
      if (onMutation === undefined || !MUTATING.has(request.method)) return;
      const auth = request.headers.get("authorization");
      const caller = apiToken !== null && tokenMatches(auth, apiToken) ? "token" : "anonymous";
      const status = typeof set.status === "number" ? set.status : Number(set.status) || 200;
      onMutation({
        method: request.method,
        path: new URL(request.url).pathname,
        status,
        caller,
        host: peers.get(request) ?? "",
        body,
      });
    });
}
