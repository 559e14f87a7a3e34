/**
 * Reading /proc for the benchmarks: one parse of a `stat` line, and the few figures the scripts
 * take from it (CPU time, a thread's name and scheduling) and from `status` (RSS).
 */
import { readFileSync } from "node:fs";

/** USER_HZ: clock ticks per second of the times in /proc/<pid>/stat (100 on x86_64 and arm64). */
export const TICK = 100;

/**
 * A `/proc/<pid>[/task/<tid>]/stat` line: the command name (field 2, in parentheses, may hold spaces
 * or ')') and the fields after it, `fields[n - 3]` being field n of proc(5).
 */
export function parseStat(stat: string): { name: string; fields: string[] } {
  const close = stat.lastIndexOf(")");
  return {
    name: stat.slice(stat.indexOf("(") + 1, close),
    fields: stat.slice(close + 2).split(" "),
  };
}

/** utime + stime (fields 14 and 15) in clock ticks. */
export function statTicks(fields: string[]): number {
  return Number(fields[11]) + Number(fields[12]);
}

/** utime + stime of process `pid` in seconds (throws if it is gone). */
export function cpuSeconds(pid: number): number {
  return statTicks(parseStat(readFileSync(`/proc/${pid}/stat`, "utf8")).fields) / TICK;
}

/** VmRSS of process `pid` in MB (0 if it has none, e.g. a zombie). */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}
