/** procfs parsing of a process' CPU time and RSS, on this test's own process and hostile text. */
import { expect, test } from "bun:test";
import { parseProcUsage, procUsage } from "../../src/metrics/proc-usage.ts";

test("this process: RSS near process.memoryUsage(), CPU time > 0", () => {
  // Burn some CPU so at least one clock tick is counted.
  let x = 0;
  for (let i = 0; i < 5e7; i++) x += i % 7;
  expect(x).toBeGreaterThan(0);
  const u = procUsage(process.pid);
  expect(u?.pid).toBe(process.pid);
  expect(u?.cpuSeconds).toBeGreaterThan(0);
  const rss = process.memoryUsage().rss;
  expect(u?.rssBytes).toBeGreaterThan(rss / 2);
  expect(u?.rssBytes).toBeLessThan(rss * 2);
});

test("a command name with spaces and ')' is skipped; malformed text and bad pids read as null", () => {
  const stat = "42 (a) b) c) S 1 42 42 0 -1 0 0 0 0 0 250 150 0 0 20 0 1 0 100 1000 50";
  expect(parseProcUsage(42, stat, "1000 300 10 1 0 50 0\n")).toEqual({
    pid: 42,
    rssBytes: 300 * 4096,
    cpuSeconds: 4,
  });
  expect(parseProcUsage(42, "garbage", "1 2")).toBeNull();
  expect(parseProcUsage(42, "1 (x) S 1 2", "x y")).toBeNull();
  expect(procUsage(-1)).toBeNull();
  expect(procUsage(0x7fffffff)).toBeNull();
});
