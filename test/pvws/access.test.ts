/**
 * PVWS writes under access security (src/access, the same rules as CA and PVA): a PVWS client is
 * user `pvws` (`pvws-token` after presenting the API token) on its host; PVs it may not write are
 * sent read-only, again when the rules are reloaded; refusals and writes are in the audit trail.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Elysia } from "elysia";
import { AuditLog } from "../../src/access/audit.ts";
import { SecurityPolicy } from "../../src/access/policy.ts";
import { AccessSecurity } from "../../src/access/security.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { PVWS_WEBSOCKET_CONFIG, PvwsHub, pvwsPlugin } from "../../src/pvws/hub.ts";
import { PvwsTestClient } from "../helpers/pvws-client.ts";

const RULES = (writer: string) => `
UAG(web) {${writer}}
ASG(DEFAULT) { RULE(1, READ) }
ASG(CTRL) {
  RULE(1, READ)
  RULE(1, WRITE) { UAG(web) }
}
`;

let dir: string;
let file: string;
let registry: PvRegistry;
let security: AccessSecurity;
let audit: AuditLog;
let hub: PvwsHub;
let app: { stop(closeActive?: boolean): Promise<unknown> };
let url: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "iocmng-pvws-acf-"));
  file = join(dir, "iocmng.acf");
  writeFileSync(file, RULES("pvws-token"));
  registry = new PvRegistry();
  registry.add({ name: "A:SP", kind: "double", writable: true, initial: 1 });
  registry.add({ name: "A:OPEN", kind: "double", writable: true, initial: 2 });
  security = await AccessSecurity.open({ file, source: registry, hostMode: "addresses" });
  audit = new AuditLog({ pluginOf: () => "p" });
  const asg = new Map([["A:SP", "CTRL"]]);
  const access = new SecurityPolicy(security, audit, (pv) => asg.get(pv.name));
  hub = new PvwsHub({ source: registry, apiToken: "tok", access });
  const a = new Elysia({ websocket: PVWS_WEBSOCKET_CONFIG }).use(pvwsPlugin(hub));
  a.listen({ hostname: "127.0.0.1", port: 0 });
  app = a;
  url = `ws://127.0.0.1:${a.server?.port}/pvws/pv`;
});

afterAll(async () => {
  await app.stop(true);
  hub.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test("rights decide readonly and writes; refusals and writes are audited", async () => {
  const c = await PvwsTestClient.connect(url);
  c.send({ type: "auth", token: "tok" });
  await c.next((m) => m.type === "auth");
  c.send({ type: "subscribe", pvs: ["A:SP", "A:OPEN"] });
  expect((await c.next((m) => m.pv === "A:SP")).readonly).toBe(false);
  // DEFAULT: read only, for everyone.
  expect((await c.next((m) => m.pv === "A:OPEN")).readonly).toBe(true);
  c.send({ type: "write", pv: "A:OPEN", value: 9 });
  expect(String((await c.next((m) => m.type === "error")).message)).toContain("access security");
  expect(registry.get("A:OPEN")!.value).toBe(2);
  c.send({ type: "write", pv: "A:SP", value: 5 });
  await c.next((m) => m.pv === "A:SP" && m.value === 5);

  // Rules reloaded: the token user may no longer write; the client is told at once.
  writeFileSync(file, RULES("someone_else"));
  expect((await security.reload()).ok).toBe(true);
  expect((await c.next((m) => m.pv === "A:SP" && m.readonly !== undefined)).readonly).toBe(true);
  c.send({ type: "write", pv: "A:SP", value: 6 });
  expect(String((await c.next((m) => m.type === "error")).message)).toContain("access security");
  expect(registry.get("A:SP")!.value).toBe(5);

  const entries = audit.query("p").filter((e) => e.via === "pvws");
  expect(entries.map((e) => [e.pv, e.user, e.result])).toEqual([
    ["A:OPEN", "pvws-token", "denied"],
    ["A:SP", "pvws-token", "ok"],
    ["A:SP", "pvws-token", "denied"],
  ]);
  c.close();
}, 60_000);

test("without the token a client is user pvws: no write right under these rules", async () => {
  writeFileSync(file, RULES("pvws-token"));
  await security.reload();
  const c = await PvwsTestClient.connect(url);
  c.send({ type: "subscribe", pvs: ["A:SP"] });
  expect((await c.next((m) => m.pv === "A:SP")).readonly).toBe(true);
  c.close();
});
