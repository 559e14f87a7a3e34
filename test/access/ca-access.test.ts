/**
 * Access security on the CA wire, byte for byte (test/helpers/ca-raw.ts): what the server sends
 * whatever the client library would hide — ACCESS_RIGHTS per channel and again on a live circuit
 * after a reload or a CALC input change, ECA_NOWTACCESS on writes, ECA_NORDACCESS and no value on
 * reads and monitors — and the audit entries with the identity the client announced.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog } from "../../src/access/audit.ts";
import { SecurityPolicy } from "../../src/access/policy.ts";
import { AccessSecurity } from "../../src/access/security.ts";
import { CMD, DBR, ECA } from "../../src/ca/codec/index.ts";
import { CaServer } from "../../src/ca/server/index.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { testLogger } from "../helpers/ca-harness.ts";
import { eventBlock, f64, msg, RawCaClient } from "../helpers/ca-raw.ts";

const RULES = `
UAG(ops) {operator}
HAG(console) {console1}
ASG(DEFAULT) { RULE(1, READ) }
ASG(CTRL) {
  RULE(1, READ)
  RULE(1, WRITE) { UAG(ops) HAG(console) }
}
ASG(HIDDEN) { RULE(1, READ) { UAG(ops) } }
ASG(GATED) {
  INPA(T:MODE)
  RULE(1, READ)
  RULE(1, WRITE) { CALC("A=1") }
}
`;

interface Setup {
  registry: PvRegistry;
  security: AccessSecurity;
  audit: AuditLog;
  server: CaServer;
  port: number;
}

let dir: string;
let file: string;
let s: Setup;

async function setup(text: string, hostMode: "names" | "addresses" = "names"): Promise<Setup> {
  writeFileSync(file, text);
  const registry = new PvRegistry();
  const asg = new Map([
    ["T:SP", "CTRL"],
    ["T:SECRET", "HIDDEN"],
    ["T:GATED", "GATED"],
  ]);
  registry.add({ name: "T:SP", kind: "double", writable: true, initial: 1 });
  registry.add({ name: "T:SECRET", kind: "double", writable: true, initial: 42 });
  registry.add({ name: "T:GATED", kind: "double", writable: true, initial: 0 });
  registry.add({ name: "T:MODE", kind: "long", writable: true, initial: 0 });
  registry.add({ name: "T:RO", kind: "double", writable: false, initial: 3 });
  const security = await AccessSecurity.open({ file, source: registry, hostMode });
  const audit = new AuditLog({ pluginOf: () => "p" });
  const access = new SecurityPolicy(security, audit, (pv) => asg.get(pv.name));
  const server = new CaServer({
    registry,
    logger: testLogger(),
    access,
    config: { serverPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false, beaconAddrs: [] },
  });
  await server.start();
  return { registry, security, audit, server, port: server.tcpPort };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "iocmng-ca-acf-"));
  file = join(dir, "rules.acf");
});
afterEach(async () => {
  await s?.server.stop();
  s?.security.close();
  rmSync(dir, { recursive: true, force: true });
});

async function writeNotify(c: RawCaClient, sid: number, ioid: number, v: number): Promise<number> {
  c.send(msg(CMD.WRITE_NOTIFY, DBR.DOUBLE, 1, sid, ioid, f64(v)));
  const r = await c.next((m) => m.header.command === CMD.WRITE_NOTIFY && m.header.p2 === ioid);
  return r.header.p1;
}

describe("CA access security", () => {
  test("rights per channel from the user and host the client announced", async () => {
    s = await setup(RULES);
    const op = await RawCaClient.handshake(s.port, "operator", "CONSOLE1");
    expect((await op.createChannel("T:SP", 1)).rights).toBe(3);
    expect((await op.createChannel("T:SECRET", 2)).rights).toBe(1);
    expect((await op.createChannel("T:RO", 3)).rights).toBe(1); // read-only PV stays read-only
    expect((await op.createChannel("T:MODE", 4)).rights).toBe(1); // DEFAULT: read

    const guest = await RawCaClient.handshake(s.port, "guest", "console1");
    expect((await guest.createChannel("T:SP", 1)).rights).toBe(1);
    expect((await guest.createChannel("T:SECRET", 2)).rights).toBe(0);
    const elsewhere = await RawCaClient.handshake(s.port, "operator", "laptop");
    expect((await elsewhere.createChannel("T:SP", 1)).rights).toBe(1);
  });

  test("a write without write access is refused with ECA_NOWTACCESS and audited", async () => {
    s = await setup(RULES);
    const guest = await RawCaClient.handshake(s.port, "guest", "console1");
    const ch = await guest.createChannel("T:SP", 7);
    expect(await writeNotify(guest, ch.sid, 100, 5)).toBe(ECA.NOWTACCESS);
    guest.send(msg(CMD.WRITE, DBR.DOUBLE, 1, ch.sid, 101, f64(6)));
    const err = await guest.next((m) => m.header.command === CMD.ERROR);
    expect(err.header.p2).toBe(ECA.NOWTACCESS);
    expect(s.registry.get("T:SP")?.value).toBe(1);

    const op = await RawCaClient.handshake(s.port, "operator", "console1");
    const och = await op.createChannel("T:SP", 1);
    expect(await writeNotify(op, och.sid, 1, 5)).toBe(ECA.NORMAL);
    expect(s.registry.get("T:SP")?.value).toBe(5);

    const entries = s.audit.query("p");
    expect(entries.map((e) => [e.user, e.host, e.pv, e.old, e.new, e.result])).toEqual([
      ["guest", "console1", "T:SP", "1", "5", "denied"],
      ["guest", "console1", "T:SP", "1", "6", "denied"],
      ["operator", "console1", "T:SP", "1", "5", "ok"],
    ]);
    expect(entries[0]?.via).toBe("ca");
  });

  test("a reader without read access gets ECA_NORDACCESS and no value, on gets and monitors", async () => {
    s = await setup(RULES);
    const guest = await RawCaClient.handshake(s.port, "guest", "h");
    const ch = await guest.createChannel("T:SECRET", 3);
    guest.send(msg(CMD.READ_NOTIFY, DBR.DOUBLE, 1, ch.sid, 9));
    const r = await guest.next((m) => m.header.command === CMD.READ_NOTIFY);
    expect(r.header.p1).toBe(ECA.NORDACCESS);
    expect(new DataView(r.payload.buffer, r.payload.byteOffset).getFloat64(0)).toBe(0);
    guest.send(msg(CMD.EVENT_ADD, DBR.DOUBLE, 1, ch.sid, 77, eventBlock(1)));
    const ev = await guest.next((m) => m.header.command === CMD.EVENT_ADD && m.header.p2 === 77);
    expect(ev.header.p1).toBe(ECA.NORDACCESS);
    expect(new DataView(ev.payload.buffer, ev.payload.byteOffset).getFloat64(0)).toBe(0);
  });

  test("a reload re-sends ACCESS_RIGHTS on the live circuit and opens monitors", async () => {
    s = await setup(RULES);
    const guest = await RawCaClient.handshake(s.port, "guest", "console1");
    const sp = await guest.createChannel("T:SP", 1);
    const secret = await guest.createChannel("T:SECRET", 2);
    guest.send(msg(CMD.EVENT_ADD, DBR.DOUBLE, 1, secret.sid, 5, eventBlock(1)));
    await guest.next((m) => m.header.command === CMD.EVENT_ADD && m.header.p2 === 5);

    writeFileSync(file, RULES.replace("{operator}", "{operator, guest}"));
    expect((await s.security.reload()).ok).toBe(true);
    const ar1 = await guest.next(
      (m) => m.header.command === CMD.ACCESS_RIGHTS && m.header.p1 === 1,
    );
    expect(ar1.header.p2).toBe(3);
    const ar2 = await guest.next(
      (m) => m.header.command === CMD.ACCESS_RIGHTS && m.header.p1 === 2,
    );
    expect(ar2.header.p2).toBe(1);
    // The monitor that had no read access now gets the value.
    const ev = await guest.next((m) => m.header.command === CMD.EVENT_ADD && m.header.p2 === 5);
    expect(ev.header.p1).toBe(ECA.NORMAL);
    expect(new DataView(ev.payload.buffer, ev.payload.byteOffset).getFloat64(0)).toBe(42);
    expect(await writeNotify(guest, sp.sid, 3, 9)).toBe(ECA.NORMAL);

    // A malformed file changes nothing on the wire.
    writeFileSync(file, "ASG(DEFAULT) { RULE(1, RAED) }");
    expect((await s.security.reload()).ok).toBe(false);
    const after = await guest.sync();
    expect(after.filter((m) => m.header.command === CMD.ACCESS_RIGHTS)).toEqual([]);
    expect(await writeNotify(guest, sp.sid, 4, 10)).toBe(ECA.NORMAL);
  });

  test("INP/CALC: writes allowed only while the mode PV is 1, both ways, rights re-sent live", async () => {
    s = await setup(RULES);
    const c = await RawCaClient.handshake(s.port, "anyone", "anywhere");
    const gated = await c.createChannel("T:GATED", 1);
    expect(gated.rights).toBe(1);
    expect(await writeNotify(c, gated.sid, 1, 1)).toBe(ECA.NOWTACCESS);

    s.registry.get("T:MODE")?.post(1);
    const up = await c.next((m) => m.header.command === CMD.ACCESS_RIGHTS && m.header.p1 === 1);
    expect(up.header.p2).toBe(3);
    expect(await writeNotify(c, gated.sid, 2, 2)).toBe(ECA.NORMAL);
    expect(s.registry.get("T:GATED")?.value).toBe(2);

    s.registry.get("T:MODE")?.post(0);
    const down = await c.next((m) => m.header.command === CMD.ACCESS_RIGHTS && m.header.p1 === 1);
    expect(down.header.p2).toBe(1);
    expect(await writeNotify(c, gated.sid, 3, 3)).toBe(ECA.NOWTACCESS);
    expect(s.registry.get("T:GATED")?.value).toBe(2);
  });

  test("a write of more elements than the PV holds is refused, not cut", async () => {
    s = await setup(RULES);
    const op = await RawCaClient.handshake(s.port, "operator", "console1");
    const ch = await op.createChannel("T:SP", 1);
    op.send(msg(CMD.WRITE_NOTIFY, DBR.DOUBLE, 2, ch.sid, 9, f64(7, 8)));
    const r = await op.next((m) => m.header.command === CMD.WRITE_NOTIFY && m.header.p2 === 9);
    expect(r.header.p1).toBe(ECA.BADCOUNT);
    expect(s.registry.get("T:SP")?.value).toBe(1);
    expect(s.audit.query("p").at(-1)).toMatchObject({ result: "failed", user: "operator" });
  });

  test("address mode: the peer address counts, not the HOST_NAME the client sends", async () => {
    s = await setup(RULES.replace("{console1}", "{127.0.0.1}"), "addresses");
    const liar = await RawCaClient.handshake(s.port, "operator", "console1");
    expect((await liar.createChannel("T:SP", 1)).rights).toBe(3); // 127.0.0.1 is in the HAG
    await s.server.stop();
    s.security.close();
    s = await setup(RULES, "addresses"); // HAG console1 does not resolve: nobody matches it
    const c = await RawCaClient.handshake(s.port, "operator", "console1");
    expect((await c.createChannel("T:SP", 1)).rights).toBe(1);
  });
});
