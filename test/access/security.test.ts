import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Access, AcfError } from "../../src/access/acf.ts";
import { accessOf, caRights } from "../../src/access/rules.ts";
import { AccessSecurity } from "../../src/access/security.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { Severity } from "../../src/pv/types.ts";

let dir: string;
let file: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "iocmng-acf-"));
  file = join(dir, "rules.acf");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const OPERATOR_ONLY = `
UAG(ops) {operator}
HAG(local) {localhost}
ASG(DEFAULT) { RULE(1, READ) }
ASG(CTRL) {
  RULE(1, READ)
  RULE(1, WRITE) { UAG(ops) HAG(local) }
}
`;

const MODE_GATED = `
ASG(DEFAULT) { RULE(1, READ) }
ASG(GATED) {
  INPA(T:MODE)
  RULE(1, READ)
  RULE(1, WRITE) { CALC("A=1") }
}
`;

describe("AccessSecurity", () => {
  test("without a file everything is allowed", async () => {
    const as = await AccessSecurity.open();
    expect(as.enabled).toBe(false);
    expect(accessOf(as.rightsFor("ANY", { user: "x", host: "y" }))).toBe(Access.RPC);
    expect((await as.reload()).ok).toBe(false);
  });

  test("a malformed file at start is refused with its line and column", async () => {
    writeFileSync(file, "UAG(ops) {operator}\nASG(CTRL) {\n  RULE(1, WRTE)\n}\n");
    const err = await AccessSecurity.open({ file }).catch((e) => e);
    expect(err).toBeInstanceOf(AcfError);
    expect([err.line, err.column]).toEqual([3, 11]);
    expect(err.message).toStartWith(`${file}:3:11: access rights must be`);
  });

  test("a missing file at start is refused", async () => {
    const err = await AccessSecurity.open({ file: join(dir, "nope.acf") }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err.message)).toContain("nope.acf");
  });

  test("identify: host names (lower case) or peer addresses", async () => {
    writeFileSync(file, OPERATOR_ONLY);
    const names = await AccessSecurity.open({ file });
    expect(names.identify("operator", "LocalHost", "10.1.2.3:5000")).toEqual({
      user: "operator",
      host: "localhost",
    });
    const addrs = await AccessSecurity.open({
      file,
      hostMode: "addresses",
      resolve: async (h) => (h === "localhost" ? "127.0.0.1" : undefined),
    });
    const id = addrs.identify("operator", "localhost", "::ffff:127.0.0.1:40000");
    expect(id).toEqual({ user: "operator", host: "127.0.0.1" });
    expect(caRights(addrs.rightsFor("CTRL", id))).toBe(3);
    // A client claiming to be "localhost" from another address gets no write.
    expect(
      caRights(addrs.rightsFor("CTRL", addrs.identify("operator", "localhost", "10.0.0.9:1"))),
    ).toBe(1);
  });

  test("reload swaps the rules, notifies listeners, and a malformed reload keeps the old rules", async () => {
    writeFileSync(file, OPERATOR_ONLY);
    const as = await AccessSecurity.open({ file });
    const op = as.identify("operator", "localhost", "127.0.0.1:1");
    const other = as.identify("guest", "localhost", "127.0.0.1:1");
    expect(caRights(as.rightsFor("CTRL", op))).toBe(3);
    expect(caRights(as.rightsFor("CTRL", other))).toBe(1);
    expect(caRights(as.rightsFor("UNDEFINED", op))).toBe(1); // DEFAULT

    const seen: (ReadonlySet<string> | null)[] = [];
    as.onChange((g) => seen.push(g));
    writeFileSync(file, OPERATOR_ONLY.replace("{operator}", "{operator, guest}"));
    expect(await as.reload()).toEqual({ ok: true, warnings: [] });
    expect(seen).toEqual([null]);
    expect(caRights(as.rightsFor("CTRL", other))).toBe(3);

    writeFileSync(file, "UAG(ops) {operator}\nASG(CTRL) {\n  RULE(1, WRITE) { UAG(nobody) }\n}\n");
    const bad = await as.reload();
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect([bad.line, bad.column]).toEqual([3, 24]);
      expect(bad.error).toContain("no user access group named 'nobody'");
    }
    expect(seen.length).toBe(1); // no notification: nothing changed
    expect(caRights(as.rightsFor("CTRL", other))).toBe(3); // old rules in force
    expect(as.status().lastError?.line).toBe(3);

    writeFileSync(file, new Uint8Array([0x41, 0x53, 0x47, 0xff, 0x00]));
    expect((await as.reload()).ok).toBe(false);
    expect(caRights(as.rightsFor("CTRL", other))).toBe(3);
  });

  test("a file gone at reload keeps the rules in force", async () => {
    writeFileSync(file, OPERATOR_ONLY);
    const as = await AccessSecurity.open({ file });
    const op = as.identify("operator", "localhost", "127.0.0.1:1");
    rmSync(file);
    const r = await as.reload();
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain("ENOENT");
    expect(caRights(as.rightsFor("CTRL", op))).toBe(3);
  });

  test("concurrent reloads apply in order", async () => {
    writeFileSync(file, OPERATOR_ONLY);
    const as = await AccessSecurity.open({ file });
    const results = await Promise.all([as.reload(), as.reload(), as.reload()]);
    expect(results.every((r) => r.ok)).toBe(true);
  });

  test("INP/CALC: rights follow a served PV both ways, through adds, removes and INVALID", async () => {
    writeFileSync(file, MODE_GATED);
    const reg = new PvRegistry();
    const as = await AccessSecurity.open({ file, source: reg });
    const id = as.identify("anyone", "anywhere", "127.0.0.1:1");
    const changes: string[] = [];
    as.onChange((g) => changes.push(g ? [...g].join(",") : "*"));
    const w = () => caRights(as.rightsFor("GATED", id));

    expect(w()).toBe(1); // T:MODE not served yet: input bad
    const mode = reg.add({ name: "T:MODE", kind: "long", initial: 1, writable: true });
    expect(w()).toBe(3);
    mode.post(0);
    expect(w()).toBe(1);
    mode.post(1);
    expect(w()).toBe(3);
    mode.post(1, { severity: Severity.INVALID });
    expect(w()).toBe(1);
    mode.post(1);
    expect(w()).toBe(3);
    reg.remove("T:MODE");
    expect(w()).toBe(1);
    expect(changes).toEqual(["GATED", "GATED", "GATED", "GATED", "GATED", "GATED"]);
    expect(as.status().inputs).toEqual([{ asg: "GATED", input: "A", pv: "T:MODE", value: null }]);

    // Through a reload, the new rules read the current value at once.
    const again = reg.add({ name: "T:MODE", kind: "long", initial: 1 });
    expect(w()).toBe(3);
    writeFileSync(file, MODE_GATED.replace("A=1", "A=2"));
    await as.reload();
    expect(w()).toBe(1);
    again.post(2);
    expect(w()).toBe(3);
    expect(as.status().inputs[0]?.value).toBe(2);
    as.close();
    again.post(0);
    expect(again.listenerCount).toBe(0);
  });

  test("string and array PVs as inputs", async () => {
    writeFileSync(file, MODE_GATED);
    const reg = new PvRegistry();
    reg.add({ name: "T:MODE", kind: "string", initial: " 1 " });
    const as = await AccessSecurity.open({ file, source: reg });
    const id = { user: "u", host: "h" };
    expect(caRights(as.rightsFor("GATED", id))).toBe(3);
    reg.get("T:MODE")?.post("one");
    expect(caRights(as.rightsFor("GATED", id))).toBe(1);
    reg.remove("T:MODE");
    const arr = reg.add({
      name: "T:MODE",
      kind: "double",
      count: 4,
      initial: new Float64Array([1, 5]),
    });
    expect(caRights(as.rightsFor("GATED", id))).toBe(3);
    arr.post(new Float64Array(0));
    expect(caRights(as.rightsFor("GATED", id))).toBe(1);
  });

  test("a huge file or a directory is refused before reading", async () => {
    writeFileSync(file, Buffer.alloc(5 * 1024 * 1024, 0x23));
    await expect(AccessSecurity.open({ file })).rejects.toThrow("larger than");
    await expect(AccessSecurity.open({ file: dir })).rejects.toThrow("not a regular file");
  });
});

describe("access settings from the environment", () => {
  test("IOCMNG_ACF wins over the config file; EPICS_CAS_USE_HOST_NAMES picks the host mode", async () => {
    const { accessSettings } = await import("../../src/access/env.ts");
    expect(accessSettings({}, null)).toEqual({ file: undefined, hostMode: "names" });
    expect(accessSettings({}, "/etc/a.acf")).toEqual({ file: "/etc/a.acf", hostMode: "names" });
    expect(accessSettings({ IOCMNG_ACF: "/x.acf" }, "/etc/a.acf").file).toBe("/x.acf");
    expect(accessSettings({ EPICS_CAS_USE_HOST_NAMES: "NO" }).hostMode).toBe("addresses");
    expect(accessSettings({ EPICS_CAS_USE_HOST_NAMES: "yes" }).hostMode).toBe("names");
    expect(() => accessSettings({ EPICS_CAS_USE_HOST_NAMES: "maybe" })).toThrow("YES or NO");
  });
});
