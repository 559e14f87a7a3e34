/**
 * What goes on the wire beyond correctness (docs/pva.md): the introspection cache on send, fields
 * without a value left out of full updates, and the idle timeout that received data re-arms.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PvRegistry } from "../../src/pv/registry.ts";
import {
  Cmd,
  decodeBitsAndPartial,
  decodeType,
  encodeType,
  encodeValue,
  type Message,
  Reader,
  scalar,
  struct,
  TypeCache,
  TypeCode,
  type TypeDesc,
  TypeSendCache,
  Writer,
} from "../../src/pva/codec/index.ts";
import { pvaServerConfigFromEnv, resolvePvaConfig } from "../../src/pva/server/config.ts";
import type { PvaServer } from "../../src/pva/server/server.ts";
import { PvaClient, pvRequest } from "../helpers/pva-client.ts";
import { flatten, typeMembers } from "../helpers/pva-dissect.ts";
import { startPva } from "../helpers/pva-harness.ts";

let registry: PvRegistry;
let server: PvaServer;
let plain: { registry: PvRegistry; server: PvaServer };

function addPvs(reg: PvRegistry): void {
  reg.add({ name: "W:PLAIN", kind: "double", writable: true, initial: 1 });
  reg.add({ name: "W:PLAIN2", kind: "double", initial: 2 });
  reg.add({
    name: "W:LIMITS",
    kind: "double",
    writable: true,
    initial: 0,
    meta: { alarm: { hihi: 10, low: -5, hyst: 0.5 } },
  });
  reg.add({ name: "W:ENUM", kind: "enum", initial: 1, meta: { states: ["A", "B"] } });
}

beforeAll(async () => {
  ({ registry, server } = await startPva());
  addPvs(registry);
  plain = await startPva({ config: { typeCache: false } });
  addPvs(plain.registry);
});

afterAll(async () => {
  await server.stop();
  await plain.server.stop();
});

/** GET INIT by hand: the reply message itself (to look at its bytes) and the decoded type. */
async function initRaw(
  c: PvaClient,
  name: string,
  cache = c.cache,
): Promise<{ m: Message; type: TypeDesc; sid: number; ioid: number }> {
  const { sid } = await c.channel(name);
  const ioid = c.ioid();
  const req = pvRequest();
  c.send(Cmd.GET, (w) => {
    w.u32(sid).u32(ioid).u8(0x08);
    encodeType(w, req.type);
    encodeValue(w, req.type, req.value);
  });
  const m = await c.next(
    (x) => x.command === Cmd.GET && new Reader(x.payload, x.le).u32() === ioid,
  );
  const r = new Reader(m.payload, m.le, 6); // ioid, subcommand, OK status (one byte)
  return { m, type: decodeType(r, cache) as TypeDesc, sid, ioid };
}

/** Leaf names a GET of `name` sets, from a fresh operation. */
async function setLeaves(c: PvaClient, name: string): Promise<string[]> {
  const { value } = await c.get(name);
  return Object.keys(flatten(value)).sort();
}

describe("introspection cache on send", () => {
  test("codec: keys up to maxKeys, then full descriptions; scalars never cached", () => {
    const send = new TypeSendCache(2);
    const recv = new TypeCache();
    const w = new Writer(256, true);
    const types = ["a", "b", "c"].map((id) => struct(id, [["v", scalar(TypeCode.INT32)]]));
    const d = scalar(TypeCode.FLOAT64);
    const seq = [types[0], types[1], types[2], types[0], types[1], types[2], d] as TypeDesc[];
    const starts: number[] = [];
    for (const t of seq) {
      starts.push(w.pos);
      send.write(w, t);
    }
    const bytes = w.bytes();
    expect(starts.map((p) => bytes[p])).toEqual([0xfd, 0xfd, 0x80, 0xfe, 0xfe, 0x80, 0x43]);
    expect(send.size).toBe(2);
    const r = new Reader(bytes, true);
    const back = seq.map(() => decodeType(r, recv));
    expect(back.map((t) => t?.id ?? null)).toEqual(["a", "b", "c", "a", "b", "c", null]);
    expect(r.remaining).toBe(0);
  });

  test("a type goes out once as 0xFD key + description, then as 0xFE key", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    const a = await initRaw(c, "W:PLAIN");
    const b = await initRaw(c, "W:PLAIN2");
    const e = await initRaw(c, "W:ENUM");
    expect(a.m.payload[6]).toBe(0xfd);
    expect(b.m.payload[6]).toBe(0xfe);
    expect(b.m.payload.length).toBe(6 + 3);
    expect(e.m.payload[6]).toBe(0xfd); // another type: a new key
    expect(new Reader(e.m.payload, e.m.le, 7).u16()).not.toBe(
      new Reader(a.m.payload, a.m.le, 7).u16(),
    );
    expect(b.type).toBe(a.type);
    expect(typeMembers(a.type)).toEqual(typeMembers((await plainType("W:PLAIN")) as TypeDesc));
    // The cached type decodes the data reply like the full one.
    c.send(Cmd.GET, (w) => w.u32(b.sid).u32(b.ioid).u8(0x10));
    const d = await c.next(
      (x) => x.command === Cmd.GET && new Reader(x.payload, x.le).u32() === b.ioid,
    );
    const { value } = decodeBitsAndPartial(new Reader(d.payload, d.le, 6), b.type, c.cache);
    expect(value.value).toBe(2);
    // GET_FIELD uses the same table.
    const f = await c.getField("W:PLAIN");
    expect(f.type).toBe(a.type);
    c.close();
  });

  test("each connection has its own table", async () => {
    const c1 = await PvaClient.connect(server.tcpPort);
    const c2 = await PvaClient.connect(server.tcpPort);
    expect((await initRaw(c1, "W:PLAIN")).m.payload[6]).toBe(0xfd);
    expect((await initRaw(c2, "W:PLAIN")).m.payload[6]).toBe(0xfd);
    c1.close();
    c2.close();
  });

  test("typeCache: false (IOCMNG_PVA_TYPE_CACHE=NO) sends full descriptions every time", async () => {
    const c = await PvaClient.connect(plain.server.tcpPort);
    const cache = new TypeCache();
    expect((await initRaw(c, "W:PLAIN", cache)).m.payload[6]).toBe(0x80);
    expect((await initRaw(c, "W:PLAIN2", cache)).m.payload[6]).toBe(0x80);
    expect(cache.size).toBe(0);
    c.close();
    expect(pvaServerConfigFromEnv({ IOCMNG_PVA_TYPE_CACHE: "NO" }).typeCache).toBe(false);
    expect(resolvePvaConfig().typeCache).toBe(true);
    expect(() => pvaServerConfigFromEnv({ IOCMNG_PVA_TYPE_CACHE: "maybe" })).toThrow(
      "IOCMNG_PVA_TYPE_CACHE",
    );
  });
});

async function plainType(name: string): Promise<TypeDesc | null> {
  const c = await PvaClient.connect(plain.server.tcpPort);
  const t = (await c.getField(name)).type;
  c.close();
  return t;
}

describe("fields without a value are left out of full updates", () => {
  test("no alarm limits: no minStep, active, severities or hysteresis; limits as NaN", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    const leaves = await setLeaves(c, "W:PLAIN");
    expect(leaves).toContain("valueAlarm.highAlarmLimit");
    expect(leaves).toContain("control.limitHigh");
    for (const absent of [
      "control.minStep",
      "valueAlarm.active",
      "valueAlarm.highAlarmSeverity",
      "valueAlarm.lowWarningSeverity",
      "valueAlarm.hysteresis",
    ])
      expect(leaves).not.toContain(absent);
    c.close();
  });

  test("with alarm limits the alarm configuration is sent; minStep never", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    const { value } = await c.get("W:LIMITS");
    const f = flatten(value);
    expect(f).toMatchObject({
      "valueAlarm.active": true,
      "valueAlarm.highAlarmLimit": 10,
      "valueAlarm.highAlarmSeverity": 2,
      "valueAlarm.lowWarningSeverity": 1,
      "valueAlarm.highWarningSeverity": 0,
      "valueAlarm.hysteresis": 0.5,
    });
    expect(Object.keys(f)).not.toContain("control.minStep");
    c.close();
  });

  test("a monitor's first update is the same; removing the limits posts active = false", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    registry.add({
      name: "W:MON",
      kind: "double",
      initial: 0,
      meta: { alarm: { hihi: 10 } },
    });
    const { sid } = await c.channel("W:MON");
    const ioid = c.ioid();
    await c.init(Cmd.MONITOR, sid, ioid);
    c.send(Cmd.MONITOR, (w) => w.u32(sid).u32(ioid).u8(0x44));
    const first = flatten((await c.update(ioid)).value);
    expect(first["valueAlarm.active"]).toBe(true);
    expect(Object.keys(first)).not.toContain("control.minStep");
    registry.get("W:MON")?.setMeta({ alarm: {} });
    const u = flatten((await c.update(ioid)).value);
    expect(u).toMatchObject({ "valueAlarm.active": false, "valueAlarm.highAlarmSeverity": 0 });
    expect(Number.isNaN(u["valueAlarm.highAlarmLimit"])).toBe(true);
    c.close();
    registry.remove("W:MON");
  });

  test("a field selection still gets exactly what it asked for", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    expect((await c.get("W:PLAIN", ["value"])).bits.toArray()).toEqual([1]);
    const va = await c.get("W:LIMITS", ["valueAlarm"]);
    expect(Object.keys(flatten(va.value))).toContain("valueAlarm.active");
    const vp = await c.get("W:PLAIN", ["valueAlarm"]);
    expect(Object.keys(flatten(vp.value))).not.toContain("valueAlarm.active");
    c.close();
  });
});

describe("idle timeout", () => {
  test("received data keeps a connection open; a silent one is closed", async () => {
    // uSockets counts in 4 s ticks: connTimeout 2 closes after 4-8 s of silence (docs/pva.md).
    const { registry: reg, server: s } = await startPva({ config: { connTimeout: 2 } });
    reg.add({ name: "TO:X", kind: "long", initial: 7 });
    const talker = await PvaClient.connect(s.tcpPort);
    const silent = await PvaClient.connect(s.tcpPort);
    for (let i = 0; i < 10; i++) {
      talker.echo(new Uint8Array([i]));
      await Bun.sleep(1000);
    }
    await silent.waitClosed(5_000);
    expect(talker.closed).toBe(false);
    expect((await talker.get("TO:X")).value.value).toBe(7);
    talker.close();
    await s.stop();
  }, 30_000);
});
