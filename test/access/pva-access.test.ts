/**
 * Access security on pvAccess: the identity is the `ca` authentication's user and host (or the
 * peer address), a denied reader gets no value, a denied writer an error status, and every write's
 * outcome reaches the audit trail with `via: "pva"`.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog } from "../../src/access/audit.ts";
import { SecurityPolicy } from "../../src/access/policy.ts";
import { AccessSecurity } from "../../src/access/security.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { PvaServer } from "../../src/pva/server/server.ts";
import { PvaClient } from "../helpers/pva-client.ts";
import { pvaTestLogger } from "../helpers/pva-harness.ts";

const RULES = `
UAG(ops) {operator}
ASG(DEFAULT) { RULE(1, READ) }
ASG(CTRL) { RULE(1, READ) RULE(1, WRITE) { UAG(ops) } }
ASG(HIDDEN) { RULE(1, READ) { UAG(ops) } }
`;

let dir: string;
let security: AccessSecurity;
let server: PvaServer;
let audit: AuditLog;
let registry: PvRegistry;
const clients: PvaClient[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "iocmng-pva-acf-"));
  const file = join(dir, "rules.acf");
  writeFileSync(file, RULES);
  registry = new PvRegistry();
  registry.add({ name: "P:SP", kind: "double", writable: true, initial: 1, asg: "CTRL" });
  registry.add({ name: "P:SECRET", kind: "double", writable: true, initial: 42, asg: "HIDDEN" });
  security = await AccessSecurity.open({ file, source: registry });
  audit = new AuditLog({ pluginOf: () => "p" });
  server = new PvaServer({
    source: registry,
    logger: pvaTestLogger(),
    access: new SecurityPolicy(security, audit),
    config: {
      serverPort: 0,
      broadcastPort: 0,
      intfAddrs: ["127.0.0.1"],
      beaconAddrs: [],
      autoBeaconAddrList: false,
    },
  });
  await server.start();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server.stop();
  security.close();
  rmSync(dir, { recursive: true, force: true });
});

async function client(user: string): Promise<PvaClient> {
  const c = await PvaClient.connect(server.tcpPort, { auth: "ca", user, userHost: "console1" });
  clients.push(c);
  return c;
}

describe("pvAccess access security", () => {
  test("writes follow the rules for the `ca` user; refusals and writes are audited", async () => {
    const guest = await client("guest");
    const denied = await guest.put("P:SP", 5);
    expect(denied.type).toBeGreaterThan(1);
    expect(denied.message).toBe("Write access denied");
    expect(registry.get("P:SP")?.value).toBe(1);

    const op = await client("operator");
    expect((await op.put("P:SP", 5)).type).toBeLessThanOrEqual(1);
    expect(registry.get("P:SP")?.value).toBe(5);

    const entries = audit.query("p").map((e) => [e.via, e.user, e.host, e.old, e.new, e.result]);
    expect(entries).toEqual([
      ["pva", "guest", "console1", "1", "5", "denied"],
      ["pva", "operator", "console1", "1", "5", "ok"],
    ]);
  });

  test("a reader without read access gets no value; a reload grants it", async () => {
    const guest = await client("guest");
    await expect(guest.get("P:SECRET")).rejects.toThrow("Read access denied");
    writeFileSync(join(dir, "rules.acf"), RULES.replace("{operator}", "{operator, guest}"));
    expect((await security.reload()).ok).toBe(true);
    const r = await guest.get("P:SECRET");
    expect(r.value.value).toBe(42);
  });
});
