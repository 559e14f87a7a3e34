/**
 * Acceptance of issue 14 with the reference client: pyepics (libca) run as real system users that
 * this test creates (it needs root, as `npm test` runs). The file lets only the "operator" user
 * from 127.0.0.1 write; another user sees read-only rights and its put is refused with the CA
 * access error; a reload that adds it flips its rights on the live connection, without
 * reconnecting; the audit trail names both users.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog } from "../../src/access/audit.ts";
import { SecurityPolicy } from "../../src/access/policy.ts";
import { AccessSecurity } from "../../src/access/security.ts";
import { CaServer } from "../../src/ca/server/index.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { pyEnv, testLogger } from "../helpers/ca-harness.ts";

const isRoot = process.getuid?.() === 0 && Bun.which("useradd") !== null;
const suffix = String(process.pid % 100000);
const OPERATOR = `iocop${suffix}`;
const READER = `iocro${suffix}`;

const rules = (writers: string) => `
UAG(operators) {${writers}}
HAG(local) {127.0.0.1}
ASG(DEFAULT) { RULE(1, READ) }
ASG(CTRL) {
  RULE(1, READ)
  RULE(1, WRITE) { UAG(operators) HAG(local) }
}
`;

let dir: string;
let file: string;
let registry: PvRegistry;
let security: AccessSecurity;
let audit: AuditLog;
let server: CaServer;

function run(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
}

/** A python3 process run as `user`, talking JSON lines on stdout and taking lines on stdin. */
class PyAs {
  private readonly proc;
  private buf = "";
  private readonly lines: unknown[] = [];
  private wake: (() => void) | null = null;
  private readonly reader;
  stderr: Promise<string>;

  constructor(user: string, code: string) {
    this.proc = Bun.spawn(
      [
        "setpriv",
        `--reuid=${user}`,
        `--regid=${user}`,
        "--clear-groups",
        "/usr/bin/python3",
        "-c",
        code,
      ],
      {
        env: { ...pyEnv(server.tcpPort), HOME: "/tmp" },
        stdin: "pipe",
        stdout: "pipe",
        stderr: "pipe",
      },
    );
    this.reader = this.proc.stdout.getReader();
    this.stderr = new Response(this.proc.stderr).text();
    void this.pump();
  }

  private async pump(): Promise<void> {
    const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await this.reader.read();
      if (done) break;
      this.buf += dec.decode(value);
      let nl = this.buf.indexOf("\n");
      while (nl >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        if (line.startsWith("{")) this.lines.push(JSON.parse(line));
        nl = this.buf.indexOf("\n");
      }
      this.wake?.();
    }
    this.wake?.();
  }

  async next(): Promise<Record<string, unknown>> {
    while (this.lines.length === 0) {
      if (this.proc.exitCode !== null) throw new Error(`python ended: ${await this.stderr}`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 200);
      });
    }
    return this.lines.shift() as Record<string, unknown>;
  }

  send(line: string): void {
    this.proc.stdin.write(`${line}\n`);
    this.proc.stdin.flush();
  }

  async exit(): Promise<number> {
    this.proc.stdin.end();
    return this.proc.exited;
  }
}

const CLIENT = `
import sys, json, time
from epics import ca
def say(o): print(json.dumps(o), flush=True)
events = []
def on_conn(pvname=None, chid=None, conn=None): events.append(bool(conn))
chid = ca.create_channel("T:SP", callback=on_conn)
ca.connect_channel(chid, timeout=10)
def put(v):
    try:
        ca.put(chid, v, wait=True, timeout=10)
        return "ok"
    except Exception as e:
        return str(e)
say({"read": bool(ca.read_access(chid)), "write": bool(ca.write_access(chid)), "put": put(7.0)})
sys.stdin.readline()
t0 = time.time()
while not ca.write_access(chid) and time.time() - t0 < 30:
    ca.poll(0.05)
say({"write": bool(ca.write_access(chid)), "put": put(8.0), "value": ca.get(chid), "connects": events})
`;

describe.skipIf(!isRoot)("CA access with real users (pyepics)", () => {
  beforeAll(async () => {
    for (const u of [OPERATOR, READER]) run(["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", u]);
    dir = mkdtempSync(join(tmpdir(), "iocmng-users-"));
    file = join(dir, "rules.acf");
    writeFileSync(file, rules(OPERATOR));
    registry = new PvRegistry();
    registry.add({ name: "T:SP", kind: "double", writable: true, initial: 1 });
    security = await AccessSecurity.open({ file, source: registry, hostMode: "addresses" });
    audit = new AuditLog();
    const access = new SecurityPolicy(security, audit, (pv) =>
      pv.name === "T:SP" ? "CTRL" : undefined,
    );
    server = new CaServer({
      registry,
      logger: testLogger(),
      access,
      config: {
        serverPort: 0,
        intfAddrs: ["127.0.0.1"],
        autoBeaconAddrList: false,
        beaconAddrs: [],
      },
    });
    await server.start();
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    security?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    for (const u of [OPERATOR, READER]) Bun.spawnSync(["userdel", u]);
  });

  test("another user is read-only and refused; the operator writes; a reload flips rights live", async () => {
    const reader = new PyAs(READER, CLIENT);
    const first = await reader.next();
    expect(first.read).toBe(true);
    expect(first.write).toBe(false);
    expect(String(first.put)).toMatch(/Write access denied|NOWTACCESS/i);
    expect(registry.get("T:SP")?.value).toBe(1);

    const op = new PyAs(OPERATOR, CLIENT);
    const opFirst = await op.next();
    expect(opFirst).toMatchObject({ read: true, write: true, put: "ok" });
    expect(registry.get("T:SP")?.value).toBe(7);
    op.send("go");
    expect((await op.next()).put).toBe("ok");
    expect(await op.exit()).toBe(0);

    writeFileSync(file, rules(`${OPERATOR}, ${READER}`));
    expect((await security.reload()).ok).toBe(true);
    reader.send("go");
    const after = await reader.next();
    expect(after).toMatchObject({ write: true, put: "ok", value: 8 });
    expect(after.connects).toEqual([true]); // one connection, never dropped
    expect(await reader.exit()).toBe(0);

    const log = audit.query("", 10).map((e) => [e.user, e.host, e.new, e.result]);
    // libca refuses the reader's first put itself (it knows the rights), so the server sees none.
    expect(log.filter((l) => l[0] === READER && l[3] !== "ok")).toEqual([]);
    expect(log).toContainEqual([OPERATOR, "127.0.0.1", "7", "ok"]);
    expect(log).toContainEqual([READER, "127.0.0.1", "8", "ok"]);
  }, 120_000);
});
