/**
 * The built-in `server` PV (docs/pva.md §The `server` PV), through real sockets with our client:
 * what `pvxlist host:port` (op=channels) and `pvxlist -i` (op=info) ask, the switch, and the
 * precedence of a real PV or RPC of that name. The captured pvxlist conversations themselves are
 * replayed in replay.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PvRegistry } from "../../src/pv/registry.ts";
import { scalar, struct, TypeCode } from "../../src/pva/codec/index.ts";
import { pvaServerConfigFromEnv, resolvePvaConfig } from "../../src/pva/server/config.ts";
import type { PvaServer } from "../../src/pva/server/server.ts";
import { VERSION } from "../../src/version.ts";
import { PvaClient, udpSearch } from "../helpers/pva-client.ts";
import { startPva } from "../helpers/pva-harness.ts";

/** The argument pvxlist sends: NTURI with path "server" and query {op}. */
const QUERY = struct("", [["op", scalar(TypeCode.STRING)]]);
const NTURI = struct("epics:nt/NTURI:1.0", [
  ["scheme", scalar(TypeCode.STRING)],
  ["authority", scalar(TypeCode.STRING)],
  ["path", scalar(TypeCode.STRING)],
  ["query", QUERY],
]);
const uri = (op: string) => ({ scheme: "", authority: "", path: "server", query: { op } });

let registry: PvRegistry;
let server: PvaServer;

beforeAll(async () => {
  ({ registry, server } = await startPva({ version: `iocmng ${VERSION} (Bun ${Bun.version})` }));
  registry.add({ name: "SP:B", kind: "double" });
  registry.add({ name: "SP:A", kind: "long" });
  registry.add({ name: "SP:C", kind: "string" });
  server.rpc.register("SP:JOB:RUN", () => ({ ok: true }));
});

afterAll(async () => {
  await server.stop();
});

describe("the server PV", () => {
  test("op=channels lists PVs and RPC names, sorted, as an NTScalarArray of strings", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    const r = await c.rpc("server", NTURI, uri("channels"));
    expect(r.status.type).toBe(0);
    expect(r.type?.id).toBe("epics:nt/NTScalarArray:1.0");
    expect(r.type?.members?.map((m) => m.name)).toEqual(["value", "alarm", "timeStamp"]);
    expect((r.value as { value: string[] }).value).toEqual(["SP:A", "SP:B", "SP:C", "SP:JOB:RUN"]);
    // The list follows the registry.
    registry.remove("SP:B");
    const again = await c.rpc("server", NTURI, uri("channels"));
    expect((again.value as { value: string[] }).value).toEqual(["SP:A", "SP:C", "SP:JOB:RUN"]);
    registry.add({ name: "SP:B", kind: "double" });
    c.close();
  });

  test("op=info names the implementation; a plain {op} argument works too", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    const r = await c.rpc("server", QUERY, { op: "info" });
    expect(r.status.type).toBe(0);
    const v = r.value as { implLang: string; version: string };
    expect(v.implLang).toBe("js");
    expect(v.version).toContain(`iocmng ${VERSION}`);
    c.close();
  });

  test("help answers a string; an unknown op is an error; GET is refused", async () => {
    const c = await PvaClient.connect(server.tcpPort);
    const helpT = struct("", [["help", scalar(TypeCode.STRING)]]);
    const h = await c.rpc("server", helpT, { help: "" });
    expect((h.value as { value: string }).value).toContain("op=channels");
    const bad = await c.rpc("server", NTURI, uri("reboot"));
    expect([bad.status.type, bad.status.message]).toEqual([2, "Not implemented"]);
    await expect(c.get("server")).rejects.toThrow("Only RPC");
    c.close();
  });

  test("search does not answer it (clients open it on a known server)", async () => {
    expect(await udpSearch(server.udpPort, ["server"])).toEqual([]);
    expect((await udpSearch(server.udpPort, ["server", "SP:A"]))[0]?.ids.length).toBe(1);
  });

  test("a PV named server takes precedence", async () => {
    const { registry: reg, server: s } = await startPva();
    reg.add({ name: "server", kind: "long", initial: 5 });
    const c = await PvaClient.connect(s.tcpPort);
    expect((await c.get("server")).value.value).toBe(5);
    const r = await c.rpc("server", NTURI, uri("channels"));
    expect(r.status.message).toBe("RPC Not Implemented");
    c.close();
    await s.stop();
  });

  test("serverPv: false (IOCMNG_PVA_SERVER_PV=NO) refuses the channel", async () => {
    const { registry: reg, server: s } = await startPva({ config: { serverPv: false } });
    reg.add({ name: "SP:X", kind: "long" });
    const c = await PvaClient.connect(s.tcpPort);
    await expect(c.channel("server")).rejects.toThrow("Refused to create Channel");
    expect((await c.get("SP:X")).value.value).toBe(0);
    c.close();
    await s.stop();
    expect(pvaServerConfigFromEnv({ IOCMNG_PVA_SERVER_PV: "no" }).serverPv).toBe(false);
    expect(resolvePvaConfig().serverPv).toBe(true);
  });
});
