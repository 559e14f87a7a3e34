/**
 * Who changed what through REST: every finished mutating request (POST, PUT, PATCH, DELETE) is
 * handed to `onMutation` with its caller — "token" when it carried the server's API token,
 * "anonymous" otherwise — and the peer address, for the audit trail (wired by src/server.ts).
 */
import { Elysia } from "elysia";
import type { MutationRecord } from "../common/mutation-record.ts";
import { MUTATING, tokenMatches } from "./auth.ts";

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
