/** The per-plugin log ring and the logger tap that fills it. */
import { expect, test } from "bun:test";
import pino from "pino";
import { LogRings, MAX_LINE_CHARS, messageOf, tapLogger } from "../../src/web/logring.ts";

test("lines logged through a plugin's child logger land in its ring, bounded", () => {
  const rings = new LogRings(5);
  const out: string[] = [];
  const base = pino({ level: "info" }, { write: (s: string) => out.push(s) });
  const log = tapLogger(base, rings);
  const plugin = log.child({ plugin: "ramp" });
  const nested = plugin.child({ component: "worker" });
  log.info("server line"); // no plugin binding: not recorded
  plugin.debug("below info: not recorded");
  for (let i = 0; i < 8; i++) nested.info(`cycle ${i}`);
  nested.error({ err: new Error("sensor unplugged") }, "execute() failed");
  nested.warn("x".repeat(MAX_LINE_CHARS + 50));
  const lines = rings.lines("ramp");
  expect(lines.length).toBe(5);
  expect(lines.map((l) => l.msg).slice(0, 3)).toEqual(["cycle 5", "cycle 6", "cycle 7"]);
  expect(lines[3]).toMatchObject({ level: "error", msg: "execute() failed: sensor unplugged" });
  expect(lines[4]!.msg.length).toBe(MAX_LINE_CHARS + 1);
  expect(rings.errorCount("ramp")).toBe(1);
  expect(rings.lastError("ramp")?.msg).toContain("sensor");
  expect(rings.plugins()).toEqual(["ramp"]);
  // The logger still logs everything as before (the tap only copies).
  expect(out.length).toBe(11);
  expect(rings.lines("ramp", lines[3]!.seq).length).toBe(1);
});

test("live listeners, and the least recently written plugin is dropped first", () => {
  const rings = new LogRings(10, 2);
  const got: string[] = [];
  const off = rings.subscribe((p, l) => got.push(`${p}:${l.msg}`));
  rings.push("a", "info", "1");
  rings.push("b", "info", "2");
  rings.push("a", "info", "3");
  rings.push("c", "info", "4"); // drops b
  off();
  rings.push("a", "info", "5");
  expect(got).toEqual(["a:1", "b:2", "a:3", "c:4"]);
  expect(rings.plugins().sort()).toEqual(["a", "c"]);
});

test("messageOf reads pino's call shapes", () => {
  expect(messageOf(["plain"])).toBe("plain");
  expect(messageOf([{ a: 1 }, "with obj"])).toBe("with obj");
  expect(messageOf([new Error("boom")])).toBe("boom");
  expect(messageOf([{ err: { message: "flat" } }, "failed"])).toBe("failed: flat");
});
