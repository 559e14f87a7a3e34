import { describe, expect, test } from "bun:test";
import { Writable } from "node:stream";
import pino from "pino";
import { AuditLog, MAX_VALUE_CHARS, summarizeValue } from "../../src/access/audit.ts";

function captureLogger(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: pino({ level: "info" }, stream), lines };
}

describe("audit trail", () => {
  test("records who, what, old -> new and result, per plugin, and logs one line each", async () => {
    const { log, lines } = captureLogger();
    const audit = new AuditLog({
      log,
      pluginOf: (pv) => (pv.startsWith("P1:") ? "p1" : undefined),
    });
    audit.record({
      pv: "P1:SP",
      via: "ca",
      user: "operator",
      host: "console1",
      old: 1,
      new: 2,
      result: "ok",
    });
    audit.record({
      pv: "P1:SP",
      via: "ca",
      user: "guest",
      host: "laptop",
      old: 2,
      new: 3,
      result: "denied",
      reason: "no write access",
    });
    audit.record({
      plugin: "p1",
      action: "restart",
      via: "rest",
      user: "admin",
      host: "10.0.0.1",
      result: "ok",
    });
    audit.record({
      pv: "OTHER:X",
      via: "pva",
      user: "u",
      host: "h",
      old: "a",
      new: "b",
      result: "ok",
    });

    const p1 = audit.query("p1");
    expect(p1.map((e) => [e.action, e.user, e.result])).toEqual([
      ["put", "operator", "ok"],
      ["put", "guest", "denied"],
      ["restart", "admin", "ok"],
    ]);
    expect(p1[0]).toMatchObject({
      pv: "P1:SP",
      via: "ca",
      host: "console1",
      old: "1",
      new: "2",
      reason: null,
    });
    expect(p1[1]?.reason).toBe("no write access");
    expect(p1[2]).toMatchObject({ pv: null, old: null, new: null });
    expect(audit.query("")[0]).toMatchObject({ pv: "OTHER:X", old: '"a"', new: '"b"' });
    expect(audit.query("p1", 1).map((e) => e.action)).toEqual(["restart"]);
    expect(audit.query("nobody")).toEqual([]);
    expect(p1.map((e) => e.seq)).toEqual([1, 2, 3]);

    await Bun.sleep(0);
    expect(lines.length).toBe(4);
    expect(lines[0]?.msg).toBe("audit ca operator@console1 P1:SP 1 -> 2 ok");
    expect(lines[1]?.msg).toBe("audit ca guest@laptop P1:SP 2 -> 3 denied: no write access");
    expect(lines[1]?.level).toBe(40); // warn
    expect(lines[0]?.audit).toMatchObject({ plugin: "p1", user: "operator" });
  });

  test("rings are bounded per plugin and in number of plugins", () => {
    const audit = new AuditLog({ perPlugin: 5, maxPlugins: 3 });
    for (let i = 0; i < 12; i++) {
      audit.record({
        plugin: "a",
        pv: "A:X",
        via: "ca",
        user: "u",
        host: "h",
        old: i,
        new: i + 1,
        result: "ok",
      });
    }
    expect(audit.query("a", 100).map((e) => e.new)).toEqual(["8", "9", "10", "11", "12"]);
    expect(audit.query("a", 2).map((e) => e.new)).toEqual(["11", "12"]);
    expect(audit.query("a", 0)).toEqual([]);
    expect(audit.query("a", Number.NaN).length).toBe(5);
    for (const p of ["b", "c"])
      audit.record({ plugin: p, via: "rest", user: "u", host: "h", result: "ok" });
    audit.record({ plugin: "a", via: "rest", user: "u", host: "h", result: "ok" }); // a is now most recent
    audit.record({ plugin: "d", via: "rest", user: "u", host: "h", result: "ok" }); // evicts b
    expect(audit.plugins().sort()).toEqual(["a", "c", "d"]);
  });

  test("hostile values and names are summarised to a bounded size", () => {
    const audit = new AuditLog();
    const e = audit.record({
      pv: "X".repeat(5000),
      via: "ca",
      user: "u".repeat(10_000),
      host: "h",
      old: new Float64Array(1_000_000),
      new: "s".repeat(100_000),
      result: "ok",
    });
    expect(e.pv?.length).toBeLessThanOrEqual(256);
    expect(e.user.length).toBeLessThanOrEqual(256);
    expect(e.old).toBe("[1000000: 0, 0, 0, 0, 0, 0, 0, 0, …]");
    expect(e.new?.length).toBeLessThanOrEqual(MAX_VALUE_CHARS);
    expect(summarizeValue(Number.NaN)).toBe("NaN");
    expect(summarizeValue(new Uint8Array([1, 2]))).toBe("[2: 1, 2]");
    expect(summarizeValue({ a: 1 })).toBe('{"a":1}');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(summarizeValue(cyclic)).toBe("[object Object]");
  });
});
