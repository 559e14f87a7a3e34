/**
 * The PVA server through real sockets with our client (test/helpers/pva-client.ts) over a
 * PvRegistry whose PVs are added, written, alarmed and removed at runtime.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PvRegistry } from "../../src/pv/registry.ts";
import { Severity } from "../../src/pv/types.ts";
import {
  beginMessage,
  Cmd,
  decodeBitsAndPartial,
  decodeType,
  encodePartial,
  encodeType,
  encodeValue,
  endMessage,
  Reader,
  scalar,
  struct,
  TypeCode,
  type TypeDesc,
  Writer,
} from "../../src/pva/codec/index.ts";
import type { PvaServer } from "../../src/pva/server/server.ts";
import { PvaClient, partialFor, pvRequest, udpSearch } from "../helpers/pva-client.ts";
import { flatten, typeMembers } from "../helpers/pva-dissect.ts";
import { startPva } from "../helpers/pva-harness.ts";

let registry: PvRegistry;
let server: PvaServer;
const writes: Array<{ value: unknown; user?: string; host?: string }> = [];

beforeAll(async () => {
  ({ registry, server } = await startPva());
  registry.add(
    {
      name: "T:DBL",
      kind: "double",
      writable: true,
      initial: 1.5,
      meta: {
        units: "mA",
        precision: 3,
        description: "Test double",
        displayLow: -100,
        displayHigh: 100,
        controlLow: -50,
        controlHigh: 50,
        alarm: { hihi: 40, high: 30, low: -30, lolo: -40 },
      },
    },
    (value, ctx) => {
      writes.push({ value, user: ctx.user, host: ctx.host });
    },
  );
  registry.add({ name: "T:RO", kind: "double", initial: 2 });
  registry.add({
    name: "T:ENUM",
    kind: "enum",
    writable: true,
    initial: 1,
    meta: { states: ["Zero", "One", "Two", "Three"], description: "Test enum" },
  });
  registry.add({ name: "T:STR", kind: "string", writable: true, initial: "hello" });
  registry.add({ name: "T:LONG", kind: "long", writable: true, initial: 42 });
  registry.add({
    name: "T:WF",
    kind: "double",
    count: 300,
    writable: true,
    initial: new Float64Array([1, 2.5, 3]),
  });
});

afterAll(async () => {
  await server.stop();
});

describe("search", () => {
  test("UDP: known names answered with our port, unknown ones silent", async () => {
    const found = await udpSearch(server.udpPort, ["T:DBL", "NOPE"]);
    expect(found.length).toBe(1);
    expect(found[0]?.ids).toEqual([500]);
    expect(found[0]?.port).toBe(server.tcpPort);
    expect(found[0]?.guid).toEqual(server.guid);
    expect(await udpSearch(server.udpPort, ["NOPE"])).toEqual([]);
    const ping = await udpSearch(server.udpPort, [], { mustReply: true, le: true });
    expect(ping.map((p) => [p.found, p.ids.length])).toEqual([[false, 0]]);
  });

  test("TCP name-server search on a validated connection, then a GET on it", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    c.search(["NOPE", "T:LONG"]);
    const m = await c.next((x) => x.command === Cmd.SEARCH_RESPONSE);
    const r = new Reader(m.payload, m.le, 12);
    expect(r.u32()).toBe(0x66696e64);
    r.raw(16);
    expect(r.u16()).toBe(server.tcpPort);
    r.string();
    r.u8();
    expect([r.u16(), r.u32()]).toEqual([1, 101]);
    expect((await c.get("T:LONG")).value.value).toBe(42);
    c.close();
  });
});

describe("operations", () => {
  let c: PvaClient;
  beforeAll(async () => {
    c = await PvaClient.connect(server.tcpPort, { user: "alice", userHost: "ws1" });
  });
  afterAll(() => c.close());

  test("GET of an NTScalar double: type and every field", async () => {
    const { type, value, bits } = await c.get("T:DBL");
    expect(type.id).toBe("epics:nt/NTScalar:1.0");
    expect(typeMembers(type).slice(0, 4)).toEqual([
      "double value",
      "structure alarm_t alarm",
      "  int severity",
      "  int status",
    ]);
    const f = flatten(value);
    expect(f).toMatchObject({
      value: 1.5,
      "alarm.severity": 0,
      "display.units": "mA",
      "display.precision": 3,
      "display.description": "Test double",
      "display.limitLow": -100,
      "control.limitHigh": 50,
      "valueAlarm.highAlarmLimit": 40,
      "valueAlarm.lowWarningLimit": -30,
    });
    expect(Math.abs((f["timeStamp.secondsPastEpoch"] as number) - Date.now() / 1000)).toBeLessThan(
      3600,
    );
    expect(bits.get(1) && bits.get(3) && !bits.get(2)).toBe(true);
  });

  test("field selection restricts the bitset; an empty selection is an INIT error", async () => {
    const v = await c.get("T:DBL", ["value"]);
    expect(v.bits.toArray()).toEqual([1]);
    const va = await c.get("T:DBL", ["value", "alarm"]);
    expect(va.bits.toArray()).toEqual([1, 3, 4, 5]);
    await expect(c.get("T:DBL", ["nosuchfield"])).rejects.toThrow();
  });

  test("NTEnum, string, long and NTScalarArray", async () => {
    const e = await c.get("T:ENUM");
    expect(e.type.id).toBe("epics:nt/NTEnum:1.0");
    expect(flatten(e.value)["value.index"]).toBe(1);
    expect(flatten(e.value)["value.choices"]).toEqual(["Zero", "One", "Two", "Three"]);
    expect((await c.get("T:STR")).value.value).toBe("hello");
    const wf = await c.get("T:WF");
    expect(wf.type.id).toBe("epics:nt/NTScalarArray:1.0");
    expect(Array.from(wf.value.value as Float64Array)).toEqual([1, 2.5, 3]);
  });

  test("PUT writes through the handler with the ca user/host; read-only and range refused", async () => {
    expect((await c.put("T:DBL", 12.5)).type).toBe(0);
    expect(registry.get("T:DBL")?.value).toBe(12.5);
    expect(writes.at(-1)).toEqual({ value: 12.5, user: "alice", host: "ws1" });
    const ro = await c.put("T:RO", 3);
    expect(ro.type).toBe(2);
    expect(ro.message).toContain("read-only");
    const range = await c.put("T:DBL", 99);
    expect(range.type).toBe(2);
    expect(range.message).toContain("drive limits");
    expect((await c.put("T:ENUM", 2, "value.index")).type).toBe(0);
    expect(registry.get("T:ENUM")?.value).toBe(2);
    expect((await c.put("T:STR", "world")).type).toBe(0);
    expect(registry.get("T:STR")?.value).toBe("world");
    expect((await c.put("T:WF", new Float64Array([4, 5]))).type).toBe(0);
    expect(Array.from(registry.get("T:WF")?.value as Float64Array)).toEqual([4, 5]);
  });

  test("PUT is answered only when the write handler has finished; failures carry the reason", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let fail = false;
    registry.add({ name: "T:SLOW", kind: "long", writable: true }, async () => {
      await gate;
      if (fail) throw new Error("motor fault");
    });
    const { sid } = await c.channel("T:SLOW");
    const ioid = c.ioid();
    const type = (await c.init(Cmd.PUT, sid, ioid)) as TypeDesc;
    const { bits, data } = partialFor(type, "value", 7);
    c.send(Cmd.PUT, (w) => {
      w.u32(sid).u32(ioid).u8(0);
      bits.encode(w);
      encodePartial(w, type, data, bits);
    });
    // A GET on the same connection completes first: replies are in order, so the PUT is still open.
    await c.get("T:DBL");
    expect(c.received.filter((m) => m.command === Cmd.PUT).length).toBe(0);
    release();
    expect((await c.reply(Cmd.PUT, ioid)).status.type).toBe(0);
    expect(registry.get("T:SLOW")?.value).toBe(7);
    fail = true;
    c.send(Cmd.PUT, (w) => {
      w.u32(sid).u32(ioid).u8(0);
      bits.encode(w);
      encodePartial(w, type, data, bits);
    });
    const st = (await c.reply(Cmd.PUT, ioid)).status;
    expect([st.type, st.message]).toEqual([2, "motor fault"]);
    registry.remove("T:SLOW");
  });

  test("PUT_GET writes then returns the new value; GET_FIELD returns the type", async () => {
    const { sid } = await c.channel("T:LONG");
    const ioid = c.ioid();
    c.send(Cmd.PUT_GET, (w) => {
      const req = pvRequest();
      w.u32(sid).u32(ioid).u8(0x08);
      encodeType(w, req.type);
      encodeValue(w, req.type, req.value);
    });
    const init = await c.reply(Cmd.PUT_GET, ioid);
    expect(init.status.type).toBe(0);
    const putT = decodeType(init.r, c.cache) as TypeDesc;
    decodeType(init.r, c.cache);
    const { bits, data } = partialFor(putT, "value", 77);
    c.send(Cmd.PUT_GET, (w) => {
      w.u32(sid).u32(ioid).u8(0);
      bits.encode(w);
      encodePartial(w, putT, data, bits);
    });
    const rep = await c.reply(Cmd.PUT_GET, ioid);
    expect(rep.status.type).toBe(0);
    expect(decodeBitsAndPartial(rep.r, putT, c.cache).value.value).toBe(77);

    const gf = await c.getField("T:ENUM");
    expect(gf.type?.id).toBe("epics:nt/NTEnum:1.0");
    const sub = await c.getField("T:DBL", "display.units");
    expect(sub.type?.code).toBe(TypeCode.STRING);
  });

  test("ECHO returns the payload", async () => {
    c.echo(Uint8Array.of(1, 2, 3));
    const m = await c.next((x) => x.command === Cmd.ECHO);
    expect(Array.from(m.payload)).toEqual([1, 2, 3]);
  });

  test("a big-endian request on a little-endian connection is read in its own order", async () => {
    const { sid } = await c.channel("T:LONG");
    const ioid = c.ioid();
    await c.init(Cmd.GET, sid, ioid);
    const w = new Writer(32, false);
    const p = beginMessage(w, Cmd.GET, false);
    w.u32(sid).u32(ioid).u8(0);
    endMessage(w, p);
    c.raw(w.bytes());
    const rep = await c.reply(Cmd.GET, ioid);
    expect(rep.status.type).toBe(0);
  });
});

describe("monitor", () => {
  test("full first update, then value+timeStamp, alarm and property changes", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    registry.add({
      name: "M:A",
      kind: "double",
      writable: true,
      initial: 0,
      meta: { alarm: { hihi: 10 }, units: "V" },
    });
    const pv = registry.get("M:A");
    const { sid } = await c.channel("M:A");
    const ioid = c.ioid();
    await c.init(Cmd.MONITOR, sid, ioid);
    c.send(Cmd.MONITOR, (w) => w.u32(sid).u32(ioid).u8(0x44));
    const first = await c.update(ioid);
    expect(first.bits.get(1) && first.bits.get(14)).toBe(true);
    pv?.post(5);
    const u1 = await c.update(ioid);
    expect(u1.bits.toArray()).toEqual([1, 7, 8, 9]);
    expect(u1.value.value).toBe(5);
    pv?.post(11);
    const u2 = await c.update(ioid);
    expect(u2.bits.toArray()).toEqual([1, 3, 4, 5, 7, 8, 9]);
    expect(flatten(u2.value)).toMatchObject({
      "alarm.severity": Severity.MAJOR,
      "alarm.message": "HIHI",
    });
    pv?.setMeta({ units: "mV" });
    const u3 = await c.update(ioid);
    expect(u3.bits.get(14) && !u3.bits.get(1)).toBe(true);
    expect(flatten(u3.value)["display.units"]).toBe("mV");
    c.close();
    registry.remove("M:A");
  });

  test("field(value) posts only value changes", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    registry.add({ name: "M:B", kind: "double", initial: 0, meta: { alarm: { hihi: 10 } } });
    const pv = registry.get("M:B");
    const { sid } = await c.channel("M:B");
    const ioid = c.ioid();
    await c.init(Cmd.MONITOR, sid, ioid, pvRequest(["value"]));
    c.send(Cmd.MONITOR, (w) => w.u32(sid).u32(ioid).u8(0x44));
    expect((await c.update(ioid)).bits.toArray()).toEqual([1]);
    pv?.setMeta({ units: "A" }); // outside the selection: no update
    pv?.post(3);
    const u = await c.update(ioid);
    expect([u.bits.toArray(), u.value.value]).toEqual([[1], 3]);
    c.close();
    registry.remove("M:B");
  });

  test("pipeline: no more than the window until acked; a slow client gets the latest value squashed", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    registry.add({ name: "M:P", kind: "long", initial: 0 });
    const pv = registry.get("M:P");
    const { sid } = await c.channel("M:P");
    const ioid = c.ioid();
    const req = pvRequest([], { pipeline: "true", queueSize: "2" });
    await c.init(Cmd.MONITOR, sid, ioid, req, (w) => w.u32(2), 0x88);
    c.send(Cmd.MONITOR, (w) => w.u32(sid).u32(ioid).u8(0x44));
    await c.update(ioid);
    for (let i = 1; i <= 50; i++) pv?.post(i);
    await c.update(ioid);
    // Window of 2 used up; a GET round trip shows nothing more was sent.
    await c.get("M:P");
    expect(c.pendingUpdates(ioid)).toBe(0);
    expect(server.stats().updatesSquashed).toBeGreaterThan(0);
    c.send(Cmd.MONITOR, (w) => w.u32(sid).u32(ioid).u8(0x80).u32(10));
    // Queue of 2: the 49 later posts were squashed into one update carrying the latest value.
    expect((await c.update(ioid)).value.value).toBe(50);
    c.close();
    registry.remove("M:P");
  });
});

describe("runtime changes", () => {
  test("removing a PV destroys its channels; re-adding lets the client reconnect", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    registry.add({ name: "R:X", kind: "long", initial: 1 });
    const { sid, cid } = await c.channel("R:X");
    const ioid = c.ioid();
    await c.init(Cmd.MONITOR, sid, ioid);
    registry.remove("R:X");
    const m = await c.next((x) => x.command === Cmd.DESTROY_CHANNEL);
    const r = new Reader(m.payload, m.le);
    expect([r.u32(), r.u32()]).toEqual([sid, cid]);
    expect(await udpSearch(server.udpPort, ["R:X"])).toEqual([]);
    registry.add({ name: "R:X", kind: "long", initial: 2 });
    expect((await c.get("R:X")).value.value).toBe(2);
    c.close();
    registry.remove("R:X");
  });

  test("closing the connection releases channels and operations", async () => {
    const settle = async () => {
      for (let i = 0; i < 250 && server.stats().connections > 0; i++) await Bun.sleep(20);
    };
    await settle(); // earlier tests' clients are closing
    const c = await PvaClient.connect(server.tcpPort);
    const { sid } = await c.channel("T:DBL");
    await c.init(Cmd.MONITOR, sid, c.ioid());
    expect(server.stats()).toMatchObject({ connections: 1, channels: 1, operations: 1 });
    c.close();
    await settle();
    expect(server.stats()).toMatchObject({ connections: 0, channels: 0, operations: 0 });
  });
});

describe("rpc hook", () => {
  test("a registered handler answers pvcall-style NTURI calls; errors carry the reason", async () => {
    server.rpc.register("JOB:RUN", (req) => {
      if (req.args.fail) throw new Error("job failed: bad input");
      return { ok: true, echo: req.args.x ?? "", n: 3, user: req.user };
    });
    const c = await PvaClient.connect(server.tcpPort, { user: "bob" });
    const uri: TypeDesc = struct("epics:nt/NTURI:1.0", [
      ["scheme", scalar(TypeCode.STRING)],
      ["authority", scalar(TypeCode.STRING)],
      ["path", scalar(TypeCode.STRING)],
      ["query", struct("", [["x", scalar(TypeCode.STRING)]])],
    ]);
    const found = await udpSearch(server.udpPort, ["JOB:RUN"]);
    expect(found.length).toBe(1);
    const ok = await c.rpc("JOB:RUN", uri, { scheme: "pva", path: "JOB:RUN", query: { x: "hi" } });
    expect(ok.status.type).toBe(0);
    expect(ok.value).toEqual({ ok: true, echo: "hi", n: 3, user: "bob" });
    const failT = struct("", [["fail", scalar(TypeCode.STRING)]]);
    const bad = await c.rpc("JOB:RUN", failT, { fail: "1" });
    expect([bad.status.type, bad.status.message]).toEqual([2, "job failed: bad input"]);
    const none = await c.rpc("T:DBL", failT, { fail: "1" });
    expect(none.status.message).toBe("RPC Not Implemented");
    c.close();
  });
});

describe("transport details", () => {
  test("anonymous authentication works; a method not offered is refused", async () => {
    const c = await PvaClient.connect(server.tcpPort, { auth: "anonymous" });
    expect((await c.get("T:LONG")).type.id).toBe("epics:nt/NTScalar:1.0");
    c.close();
    const bad = await PvaClient.connect(server.tcpPort, { validate: false });
    await bad.next((m) => m.command === Cmd.CONNECTION_VALIDATION);
    bad.send(Cmd.CONNECTION_VALIDATION, (w) =>
      w.u32(0x10000).u16(0x7fff).u16(0).string("x509").u8(0xff),
    );
    const v = await bad.next((m) => m.command === Cmd.CONNECTION_VALIDATED);
    expect(new Reader(v.payload, v.le).status().message).toContain("unadvertised");
    bad.close();
  });

  test("a taken TCP port falls back to a free one, advertised in search replies", async () => {
    const { registry: reg, server: other } = await startPva({
      config: { serverPort: server.tcpPort },
    });
    reg.add({ name: "FB:X", kind: "long" });
    expect(other.tcpPort).not.toBe(server.tcpPort);
    const found = await udpSearch(other.udpPort, ["FB:X"]);
    expect(found[0]?.port).toBe(other.tcpPort);
    await other.stop();
  });

  test("EPICS_PVAS_IGNORE_ADDR_LIST: searches from an ignored address get no reply", async () => {
    const { registry: reg, server: deaf } = await startPva({
      config: { ignoreAddrs: ["127.0.0.1"] },
    });
    reg.add({ name: "IG:X", kind: "long" });
    expect(await udpSearch(deaf.udpPort, ["IG:X"])).toEqual([]);
    expect(deaf.stats().searchDatagrams).toBeGreaterThan(0);
    await deaf.stop();
  });

  test("beacons carry the GUID and the TCP port", async () => {
    const dgram = await import("node:dgram");
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    const got = new Promise<Buffer>((r) => sock.once("message", (m) => r(m)));
    const { server: b } = await startPva({
      config: { beaconAddrs: [`127.0.0.1:${sock.address().port}`], beaconPeriod: 60 },
    });
    const m = new Uint8Array(await got);
    expect([m[0], m[2], m[3]]).toEqual([0xca, 0xc0, Cmd.BEACON]);
    expect(m.subarray(8, 20)).toEqual(b.guid);
    expect(new DataView(m.buffer).getUint16(8 + 12 + 4 + 16, false)).toBe(b.tcpPort);
    sock.close();
    await b.stop();
  });
});

describe("several servers on one UDP port", () => {
  test("a unicast search reaching either server is answered by the one that has the name", async () => {
    const a = await startPva();
    const b = await startPva({ config: { broadcastPort: a.server.udpPort } });
    expect(b.server.udpPort).toBe(a.server.udpPort);
    a.registry.add({ name: "SHARE:A", kind: "long" });
    b.registry.add({ name: "SHARE:B", kind: "long" });
    // Only one of the two sockets gets each unicast datagram; the loopback fan-out brings it to
    // the other, so both names are found whichever socket the kernel picked.
    for (const [name, owner] of [
      ["SHARE:A", a.server],
      ["SHARE:B", b.server],
    ] as const) {
      const found = await udpSearch(a.server.udpPort, [name]);
      expect(found.map((f) => f.port)).toEqual([owner.tcpPort]);
    }
    await b.server.stop();
    await a.server.stop();
  });
});

describe("deadbands and alarms as CA clients see them", () => {
  test("a change within MDEL posts nothing; an alarm change posts even within it", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    registry.add({
      name: "DB:X",
      kind: "double",
      initial: 0,
      meta: { mdel: 1, alarm: { high: 0.5 } },
    });
    const pv = registry.get("DB:X");
    const { sid } = await c.channel("DB:X");
    const ioid = c.ioid();
    await c.init(Cmd.MONITOR, sid, ioid);
    c.send(Cmd.MONITOR, (w) => w.u32(sid).u32(ioid).u8(0x44));
    await c.update(ioid);
    pv?.post(0.3); // within the deadband, no alarm change
    await c.get("DB:X"); // a round trip on the same connection: anything posted would be here by now
    expect(c.pendingUpdates(ioid)).toBe(0);
    pv?.post(0.6); // still within the deadband, but HIGH: alarm fields only
    const u = await c.update(ioid);
    expect(u.bits.get(1)).toBe(false);
    expect(flatten(u.value)["alarm.message"]).toBe("HIGH");
    c.close();
    registry.remove("DB:X");
  });
});
