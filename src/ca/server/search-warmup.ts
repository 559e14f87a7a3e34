/**
 * Search-thread half of the CA warm-up (the circuit half is warmup.ts, where the why is): runs
 * the search responder and the batched reply sender on synthetic datagrams of the shape libca
 * sends in a connect storm (a VERSION, then ~30 SEARCHes), so JSC has compiled name matching and
 * reply encoding before the first real storm. Everything is its own: a name set of synthetic
 * names, counters that are not the shared ones, a sender whose "socket" drops what it is given.
 * Runs in slices with a macrotask between them, so real datagrams are answered meanwhile.
 */
import type dgram from "node:dgram";
import { NameSet } from "../../common/name-set.ts";
import { CA_MINOR_VERSION, CMD, SEARCH_REPLY } from "../codec/constants.ts";
import { concatMessages, encodeMessage } from "../codec/messages.ts";
import { SEARCH_COUNTER_SLOTS, SEARCH_REPLIES } from "./search-protocol.ts";
import { SearchReplySender, SearchResponder } from "./udp.ts";

const NAMES = 1000;
const PER_DATAGRAM = 31;
const textEncoder = new TextEncoder();

/** Handles `datagrams` synthetic search datagrams; resolves with the milliseconds it took. */
export async function warmUpSearch(
  maxNameLength: number,
  datagrams = 1000,
  slice = 32,
  cancelled: () => boolean = () => false,
): Promise<{ datagrams: number; replies: number; wallMs: number; busyMs: number }> {
  const t0 = performance.now();
  // The same structure the session answers from (search-worker.ts), so its lookup is compiled.
  const names = new NameSet("latin1");
  for (let i = 0; i < NAMES; i++) names.add(`IOCMNG:WARMUP:D${i}`);
  const counters = new Float64Array(SEARCH_COUNTER_SLOTS);
  const responder = new SearchResponder(names, [], maxNameLength, () => {}, counters);
  // No socket is ever reached: the stand-in native path takes every datagram.
  const sender = new SearchReplySender(
    null as unknown as dgram.Socket,
    { send: () => true, sendMany: (packets) => packets.length / 3 },
    () => {},
  );
  const built: Uint8Array[] = [];
  for (let d = 0; d < 64; d++) {
    const parts = [encodeMessage(CMD.VERSION, 0, CA_MINOR_VERSION, 0, d)];
    for (let k = 0; k < PER_DATAGRAM; k++) {
      // One name in eight is not served: the miss path is part of every real storm too.
      const i = (d * PER_DATAGRAM + k) % NAMES;
      const name = k % 8 === 7 ? `IOCMNG:ELSEWHERE:${i}` : `IOCMNG:WARMUP:D${i}`;
      const payload = textEncoder.encode(`${name}\0`);
      parts.push(
        encodeMessage(CMD.SEARCH, SEARCH_REPLY.DONT_REPLY, CA_MINOR_VERSION, i, i, payload),
      );
    }
    // A Buffer, as node:dgram delivers datagrams: code compiled on plain Uint8Arrays guards on
    // their type and was thrown away at the first real search (docs/ca-server.md, warm-up).
    built.push(Buffer.from(concatMessages(parts)));
  }
  let busy = 0;
  let done = 0;
  while (done < datagrams && !cancelled()) {
    const s = performance.now();
    for (let k = 0; k < slice && done < datagrams; k++, done++) {
      responder.handle(
        built[done % built.length] as Uint8Array,
        "127.0.0.1",
        40000 + (done % 3),
        sender,
        5064,
      );
      if (done % 16 === 15) sender.flush();
    }
    sender.flush();
    busy += performance.now() - s;
    await new Promise<void>((r) => setImmediate(r));
  }
  const replies = counters[SEARCH_REPLIES] ?? 0;
  return { datagrams: done, replies, wallMs: performance.now() - t0, busyMs: busy };
}
