/**
 * Server side of a plugin's batched addPv calls (protocol.ts `addPv`, sent by worker-pvs.ts): the
 * calls are applied in order through the host's events (the bridge checks each name and
 * definition: a hostile plugin sends anything), and each gets its own outcome in the one reply.
 */
import { errorMessage } from "../../common/errors.ts";
import type { PvDefinition } from "../../sdk/host.ts";
import type { HostEvents } from "../host.ts";
import { MAX_ADD_BATCH } from "../protocol.ts";

/** One [true, current value] or [false, reason] per call, or why the whole batch is refused. */
export async function applyAddBatch(
  items: unknown,
  events: Pick<HostEvents, "onAddPv">,
): Promise<Array<[boolean, unknown]> | string> {
  if (!Array.isArray(items) || items.length > MAX_ADD_BATCH) return "malformed addPv batch";
  const out: Array<[boolean, unknown]> = [];
  for (const it of items) {
    if (!Array.isArray(it)) {
      out.push([false, "malformed addPv call"]);
      continue;
    }
    try {
      out.push([true, await events.onAddPv(it[0] as string, it[1] as PvDefinition)]);
    } catch (err) {
      out.push([false, errorMessage(err)]);
    }
  }
  return out;
}
