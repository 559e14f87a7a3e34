/**
 * The per-peer cap on buffered bytes (maxBufferedBytesPerPeer): all connections of one peer IP
 * together may hold only so much unsent output plus partly received input. The connection whose
 * growth crosses the cap is closed, the others stay served, the refusal is logged once with the
 * peer, and bytes are given back when connections close.
 */
import { expect, test } from "bun:test";
import pino from "pino";
import { PvRegistry } from "../../src/pv/registry.ts";
import { Cmd } from "../../src/pva/codec/index.ts";
import { PvaServer } from "../../src/pva/server/server.ts";
import { PvaClient } from "../helpers/pva-client.ts";

const CAP = 65_536;
const PART = 30_000;

/** A GET whose header announces 40,000 bytes, of which only PART arrive: the server buffers them. */
function partialMessage(): Uint8Array {
  const b = new Uint8Array(8 + PART);
  const v = new DataView(b.buffer);
  b.set([0xca, 2, 0x00, Cmd.GET]);
  v.setUint32(4, 40_000, true);
  return b;
}

/** Bounded wait for the server to have taken in what was sent (not a timing assertion). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await Bun.sleep(10);
}

test("a peer over its buffered-bytes cap loses the connection that crossed it, logged once", async () => {
  const lines: string[] = [];
  const logger = pino({ level: "warn" }, { write: (s: string) => void lines.push(s) });
  const registry = new PvRegistry();
  registry.add({ name: "PB:A", kind: "long", initial: 7 });
  const srv = new PvaServer({
    source: registry,
    logger,
    config: {
      serverPort: 0,
      broadcastPort: 0,
      intfAddrs: ["127.0.0.1"],
      autoBeaconAddrList: false,
      maxBufferedBytesPerPeer: CAP,
    },
  });
  await srv.start();
  try {
    const a = await PvaClient.connect(srv.tcpPort);
    const b = await PvaClient.connect(srv.tcpPort);
    a.raw(partialMessage());
    b.raw(partialMessage());
    await until(() => srv.stats().bufferedBytes >= 2 * PART);
    expect(srv.stats().bufferedBytes).toBe(2 * (PART + 8));
    // Two more connections each cross the cap: both closed, one log line for the peer.
    for (let i = 0; i < 2; i++) {
      const c = await PvaClient.connect(srv.tcpPort);
      c.raw(partialMessage());
      await c.waitClosed();
    }
    expect(a.closed || b.closed).toBe(false);
    const refusals = lines.filter((l) => l.includes("per-peer buffered bytes limit"));
    expect(refusals.length).toBe(1);
    expect(JSON.parse(refusals[0] as string)).toMatchObject({ peer: "127.0.0.1", limit: CAP });
    // A connection that buffers nothing is still served.
    const d = await PvaClient.connect(srv.tcpPort);
    expect((await d.get("PB:A")).value.value).toBe(7);
    // Closing gives the bytes back: the same load fits again.
    a.close();
    await until(() => srv.stats().bufferedBytes <= PART + 8);
    expect(srv.stats().bufferedBytes).toBe(PART + 8);
    const e = await PvaClient.connect(srv.tcpPort);
    e.raw(partialMessage());
    await until(() => srv.stats().bufferedBytes >= 2 * PART);
    expect(srv.stats().bufferedBytes).toBe(2 * (PART + 8));
    expect(e.closed).toBe(false);
    for (const x of [b, d, e]) x.close();
  } finally {
    await srv.stop();
  }
});
