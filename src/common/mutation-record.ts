/**
 * One finished mutating REST request (POST, PUT, PATCH, DELETE): what the API hands its
 * `onMutation` hook (src/api/mutations.ts) and what the audit trail records (src/access/rest.ts).
 * A leaf of its own because api/ and access/ may not import each other.
 */
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
