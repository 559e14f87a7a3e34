/**
 * Access security in the real server (`bun src/main.ts serve`, spawned): IOCMNG_ACF at start (a
 * malformed file refuses the start with line and column), a plugin from a git repository whose
 * config.yaml puts its PVs in groups, CA puts through pyepics allowed or refused by the rules, an
 * INP/CALC rule both ways, reloads through REST (malformed: the old rules stay) and SIGHUP, the
 * operator's cap on groups, and the audit trail of CA and REST changes over REST.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  makeDirs,
  type ServerDirs,
  type SpawnedServer,
  spawnServer,
  startProcess,
} from "../e2e/lib/server.ts";
import { runPy } from "../helpers/ca-harness.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";

const me = Bun.spawnSync(["id", "-un"]).stdout.toString().trim();

const rules = (writers: string) => `
UAG(ops) {${writers}}
ASG(DEFAULT) { RULE(1, READ) }
ASG(CTRL) {
  RULE(1, READ)
  RULE(1, WRITE) { UAG(ops) }
}
ASG(GATED) {
  INPA(IOCMNG:ACC:MODE)
  RULE(1, READ)
  RULE(1, WRITE) { CALC("A=1") }
}
`;

const PLUGIN: Record<string, string> = {
  "acc.ts": `import { TaskBase } from "iocmng";
export default class Acc extends TaskBase {
  initialize() {}
  execute() {}
  cleanup() {}
}
`,
  "config.yaml": `parameters:
  mode: triggered
access:
  asg: CTRL
pvs:
  inputs:
    SP: { type: float, value: 1, drvl: 0, drvh: 100 }
    MODE: { type: int, value: 0, asg: DEFAULT_OPEN }
    GATED: { type: float, value: 0, asg: GATED }
`,
};

let tmp: string;
let acf: string;
let serverCfg: string;
let dirs: ServerDirs;
let repo: TestRepo;
let srv: SpawnedServer;

/** Rights and a put's outcome as pyepics (as this user) sees them. */
async function tryPut(
  pv: string,
  value: number,
): Promise<{ write: boolean; put: string; value: number }> {
  const code = `
from epics import ca
chid = ca.create_channel("${pv}")
ca.connect_channel(chid, timeout=10)
w = bool(ca.write_access(chid))
try:
    ca.put(chid, float("${value}"), wait=True, timeout=10)
    r = "ok"
except Exception as e:
    r = str(e)
out({"write": w, "put": r, "value": ca.get(chid)})
`;
  return (await runPy(srv.caPort, code)) as { write: boolean; put: string; value: number };
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "iocmng-acc-srv-"));
  acf = join(tmp, "rules.acf");
  // MODE is in a group the file does not define: DEFAULT (read-only). A second group, open to all,
  // lets the test set MODE: DEFAULT_OPEN.
  writeFileSync(acf, `${rules(me)}ASG(DEFAULT_OPEN) { RULE(1, WRITE) }\n`);
  serverCfg = join(tmp, "iocmng.yaml");
  writeFileSync(serverCfg, "access_groups: [CTRL, GATED, DEFAULT_OPEN]\n");
  repo = await createRepo({ files: PLUGIN });
  dirs = await makeDirs();
  srv = await spawnServer(dirs, { env: { IOCMNG_ACF: acf, IOCMNG_CONFIG: serverCfg } });
}, 120_000);

afterAll(async () => {
  await srv?.kill();
  await dirs?.remove();
  await repo?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

describe("access security in the server", () => {
  test("a malformed file refuses the start with its line and column", async () => {
    const bad = join(tmp, "bad.acf");
    writeFileSync(bad, "UAG(ops) {a}\nASG(X) {\n  RULE(1, WRTE)\n}\n");
    const d = await makeDirs();
    try {
      const p = await startProcess(d, { env: { IOCMNG_ACF: bad } });
      const code = await p.proc.exited;
      expect(code).not.toBe(0);
      expect(p.output()).toContain(`${bad}:3:11: access rights must be NONE, READ, WRITE or RPC`);
    } finally {
      await d.remove();
    }
  }, 60_000);

  test("plugin PVs in their groups: CA rights, INP/CALC both ways, audit of CA and REST", async () => {
    const add = await srv.api("POST", "/tasks", { name: "acc", git_url: repo.url });
    expect(add.status).toBe(201);

    const sp = await tryPut("IOCMNG:ACC:SP", 5);
    expect(sp).toEqual({ write: true, put: "ok", value: 5 });
    // ENABLE is a default PV: the plugin's group too.
    expect((await tryPut("IOCMNG:ACC:ENABLE", 0)).write).toBe(true);

    const closed = await tryPut("IOCMNG:ACC:GATED", 3);
    expect(closed.write).toBe(false);
    expect(closed.put).toMatch(/Write access denied|NOWTACCESS/i);
    expect((await tryPut("IOCMNG:ACC:MODE", 1)).put).toBe("ok");
    expect(await tryPut("IOCMNG:ACC:GATED", 3)).toEqual({ write: true, put: "ok", value: 3 });
    expect((await tryPut("IOCMNG:ACC:MODE", 0)).put).toBe("ok");
    expect((await tryPut("IOCMNG:ACC:GATED", 4)).write).toBe(false);

    // NaN is refused on a PV with drive limits: pyepics sends it, the server refuses it (pyepics
    // does not report a put-callback failure, so the value and the audit entry tell).
    const nan = await tryPut("IOCMNG:ACC:SP", Number.NaN);
    expect(nan.value).toBe(5);

    const audit = await srv.api("GET", "/tasks/acc/audit?limit=50");
    expect(audit.status).toBe(200);
    const entries = audit.body.entries as Record<string, string | null>[];
    const brief = entries.map((e) => [e.via, e.action, e.pv, e.user, e.old, e.new, e.result]);
    expect(brief[0]).toEqual(["rest", "task add", null, "anonymous", null, null, "ok"]);
    expect(brief).toContainEqual(["ca", "put", "IOCMNG:ACC:SP", me, "1", "5", "ok"]);
    expect(brief).toContainEqual(["ca", "put", "IOCMNG:ACC:GATED", me, "0", "3", "ok"]);
    expect(brief).toContainEqual(["ca", "put", "IOCMNG:ACC:SP", me, "5", "NaN", "failed"]);
    expect(entries.find((e) => e.via === "rest")?.host).toBe("127.0.0.1");
  }, 120_000);

  test("reload: malformed through REST keeps the rules; a good file through SIGHUP applies", async () => {
    writeFileSync(acf, "ASG(DEFAULT) {\n  RULE(1, READ) { UAG(nobody) }\n}\n");
    const bad = await srv.api("POST", "/access/reload");
    expect(bad.status).toBe(422);
    expect(bad.body).toMatchObject({ ok: false, line: 2, column: 23 });
    expect((await tryPut("IOCMNG:ACC:SP", 6)).put).toBe("ok");
    const st = await srv.api("GET", "/access");
    expect(st.body.lastError).toMatchObject({ line: 2, column: 23 });

    writeFileSync(acf, `${rules("someone_else")}ASG(DEFAULT_OPEN) { RULE(1, WRITE) }\n`);
    srv.proc.kill("SIGHUP");
    let after = await tryPut("IOCMNG:ACC:SP", 7);
    for (let i = 0; i < 50 && after.write; i++) {
      await Bun.sleep(100);
      after = await tryPut("IOCMNG:ACC:SP", 7);
    }
    expect(after.write).toBe(false);
    expect(after.value).toBe(6);
    expect(srv.output()).toContain("SIGHUP: reloading the access security file");
  }, 120_000);

  test("the operator's cap: a plugin naming a group outside access_groups is refused", async () => {
    const open = await createRepo({
      files: {
        "acc.ts": PLUGIN["acc.ts"] as string,
        "config.yaml": "parameters:\n  mode: triggered\naccess:\n  asg: WIDE_OPEN\n",
      },
    });
    try {
      const r = await srv.api("POST", "/tasks", { name: "wide", git_url: open.url });
      expect(r.status).toBe(422);
      expect(String(r.body.message)).toContain("access security group WIDE_OPEN not allowed");
      const audit = await srv.api("GET", "/tasks/wide/audit");
      expect((audit.body.entries as { result: string }[])[0]?.result).toBe("failed");
    } finally {
      await open.cleanup();
    }
  }, 120_000);
});
