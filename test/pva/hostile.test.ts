/**
 * Hostile input: oversized, truncated, broken-segmentation and wrong-order messages, per-connection
 * bounds, slow monitor clients. None may crash the server or disturb another connection.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PvRegistry } from "../../src/pv/registry.ts";
import { Cmd, encodeType, encodeValue, Writer } from "../../src/pva/codec/index.ts";
import type { PvaServer } from "../../src/pva/server/server.ts";
import { PvaClient, pvRequest } from "../helpers/pva-client.ts";
import { startPva } from "../helpers/pva-harness.ts";

let registry: PvRegistry;
let server: PvaServer;

beforeAll(async () => {
  ({ registry, server } = await startPva({
    config: { maxChannelsPerConnection: 5, maxOpsPerConnection: 5, maxMessageBytes: 1 << 20 },
  }));
  registry.add({ name: "H:A", kind: "double", writable: true, initial: 1 });
});
afterAll(async () => {
  await server.stop();
});

/** A GET on a fresh connection: the server still serves others. */
async function stillServes(): Promise<void> {
  const c = await PvaClient.connect(server.tcpPort);
  expect((await c.get("H:A")).value.value).toBe(registry.get("H:A")?.value as number);
  c.close();
}

describe("framing errors close only the offending connection", () => {
  const cases: Array<[string, Uint8Array]> = [
    ["bad magic", Uint8Array.of(0xcb, 2, 0, 10, 0, 0, 0, 0)],
    ["oversized", Uint8Array.of(0xca, 2, 0, 10, 0, 0, 0, 0x40)],
    ["oversized big-endian", Uint8Array.of(0xca, 2, 0x80, 10, 0x40, 0, 0, 0)],
    ["orphan last segment", Uint8Array.of(0xca, 2, 0x20, 10, 1, 0, 0, 0, 0)],
    ["version 0", Uint8Array.of(0xca, 0, 0, 10, 0, 0, 0, 0)],
  ];
  for (const [name, bytes] of cases) {
    test(name, async () => {
      const other = await PvaClient.connect(server.tcpPort);
      const bad = await PvaClient.connect(server.tcpPort);
      bad.raw(bytes);
      await bad.waitClosed();
      expect((await other.get("H:A")).value.value).toBe(1);
      other.close();
    });
  }

  test("a truncated message waits for the rest and then works", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    const w = new Writer(64, true);
    w.u8(0xca)
      .u8(2)
      .u8(0)
      .u8(Cmd.ECHO)
      .u32(4)
      .raw(Uint8Array.of(1, 2, 3, 4));
    const b = w.bytes();
    for (const x of b) c.raw(Uint8Array.of(x));
    const m = await c.next((x) => x.command === Cmd.ECHO);
    expect(Array.from(m.payload)).toEqual([1, 2, 3, 4]);
    c.close();
  });
});

describe("malformed payloads are dropped, the connection goes on", () => {
  test("garbage bodies for every command, then a GET on the same connection", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    for (let cmd = 0; cmd < 32; cmd++) {
      for (const body of [
        new Uint8Array(0),
        Uint8Array.of(0xff),
        Uint8Array.of(1, 3, 5, 7, 0xfe, 0xff, 0xff, 0xff, 0x7f),
      ]) {
        c.send(cmd, (w) => w.raw(body));
      }
    }
    expect((await c.get("H:A")).value.value).toBe(1);
    expect(server.stats().badMessages).toBeGreaterThan(0);
    c.close();
  });

  test("a segmented GET is joined and answered", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    const { sid } = await c.channel("H:A");
    const ioid = c.ioid();
    const req = pvRequest();
    const body = new Writer(64, true);
    body.u32(sid).u32(ioid).u8(0x08);
    encodeType(body, req.type);
    encodeValue(body, req.type, req.value);
    const payload = body.bytes();
    const seg = (flags: number, part: Uint8Array) => {
      const w = new Writer(16, true);
      w.u8(0xca).u8(2).u8(flags).u8(Cmd.GET).u32(part.length).raw(part);
      return w.bytes();
    };
    c.raw(seg(0x10, payload.subarray(0, 3)));
    c.raw(seg(0x30, payload.subarray(3, 9)));
    c.raw(seg(0x20, payload.subarray(9)));
    const rep = await c.reply(Cmd.GET, ioid);
    expect(rep.status.type).toBe(0);
    c.close();
  });
});

describe("per-connection bounds", () => {
  test("channels beyond the limit are refused with a status; the others work", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    for (let i = 0; i < 5; i++) await c.channel("H:A");
    await expect(c.channel("H:A")).rejects.toThrow(/Too many channels/);
    c.close();
    await stillServes();
  });

  test("operations beyond the limit are refused at INIT", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    const { sid } = await c.channel("H:A");
    for (let i = 0; i < 5; i++) await c.init(Cmd.MONITOR, sid, c.ioid());
    await expect(c.init(Cmd.GET, sid, c.ioid())).rejects.toThrow(/Too many operations/);
    c.close();
  });

  test("requests before validation are ignored", async () => {
    const c = await PvaClient.connect(server.tcpPort, { validate: false });
    c.send(Cmd.CREATE_CHANNEL, (w) => w.u16(1).u32(1).string("H:A"));
    c.echo(Uint8Array.of(9));
    await c.next((x) => x.command === Cmd.ECHO);
    expect(c.received.some((x) => x.command === Cmd.CREATE_CHANNEL)).toBe(false);
    c.close();
  });

  test("a monitor client that never reads keeps a bounded queue and does not delay others", async () => {
    registry.add({ name: "H:FAST", kind: "double", count: 2000, initial: new Float64Array(2000) });
    const pv = registry.get("H:FAST");
    const slow = await PvaClient.connect(server.tcpPort);
    const { sid } = await slow.channel("H:FAST");
    const ioid = slow.ioid();
    await slow.init(Cmd.MONITOR, sid, ioid, pvRequest([], { queueSize: "3" }));
    slow.send(Cmd.MONITOR, (w) => w.u32(sid).u32(ioid).u8(0x44));
    slow.pause();
    const data = new Float64Array(2000);
    for (let i = 0; i < 3000; i++) {
      data[0] = i;
      pv?.post(data.slice());
      if (i % 500 === 0) await stillServes();
    }
    const s = server.stats();
    expect(s.queuedUpdates).toBeLessThanOrEqual(3);
    expect(s.updatesSquashed).toBeGreaterThan(0);
    expect(s.queuedBytes).toBeLessThan(8 * 1024 * 1024);
    await stillServes();
    // Once it reads again it ends on the latest value.
    slow.resume();
    let last = -1;
    while (last !== 2999) last = ((await slow.update(ioid)).value.value as Float64Array)[0] ?? -1;
    slow.close();
    registry.remove("H:FAST");
  });
});

describe("per-peer bound", () => {
  test("connections beyond maxConnectionsPerPeer are closed at once; others still served", async () => {
    const { registry: reg, server: srv } = await startPva({ config: { maxConnectionsPerPeer: 2 } });
    reg.add({ name: "P:A", kind: "long", initial: 5 });
    const a = await PvaClient.connect(srv.tcpPort);
    const b = await PvaClient.connect(srv.tcpPort);
    const c = await PvaClient.connect(srv.tcpPort, { validate: false });
    await c.waitClosed();
    expect(srv.stats().connectionsRefused).toBe(1);
    expect((await a.get("P:A")).value.value).toBe(5);
    a.close();
    b.close();
    await srv.stop();
  });
});
