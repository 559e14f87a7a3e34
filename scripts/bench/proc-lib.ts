/**
 * What the benchmark server processes (`*-proc.ts`, spawned by the bench drivers) share: the
 * bench PV set, the value poster behind `update` and `flood`, this process's usage, and the loop
 * answering commands on stdin.
 */
import type { Pv } from "../../src/pv/pv.ts";
import type { PvRegistry } from "../../src/pv/registry.ts";

/** `count` doubles `${prefix}0..count-1`, plus `BENCH:LAT` (1.5) for the latency probes. */
export function benchPvs(registry: PvRegistry, count: number, prefix: string): Pv[] {
  const pvs: Pv[] = [];
  for (let i = 0; i < count; i++) pvs.push(registry.add({ name: `${prefix}${i}`, kind: "double" }));
  registry.add({ name: "BENCH:LAT", kind: "double", initial: 1.5 });
  return pvs;
}

/** Posts `tick + i` to the first n PVs: `update(n, hz)` on a timer, `flood(n)` back to back. */
export class Poster {
  private timer: ReturnType<typeof setInterval> | null = null;
  private flooding = false;
  private tick = 0;

  constructor(private readonly pvs: Pv[]) {}

  private postAll(n: number): void {
    this.tick++;
    for (let i = 0; i < n; i++) (this.pvs[i] as Pv).post(this.tick + i);
  }

  /** Posts at `hz` (0 stops). */
  update(n: number, hz: number): void {
    this.stop();
    if (hz > 0) this.timer = setInterval(() => this.postAll(n), 1000 / hz);
  }

  /** Posts as fast as the event loop allows, one round per turn (0 stops). */
  flood(n: number): void {
    this.stop();
    if (n <= 0) return;
    this.flooding = true;
    const loop = () => {
      if (!this.flooding) return;
      this.postAll(n);
      setImmediate(loop);
    };
    loop();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.flooding = false;
  }
}

/** This process's resident memory (bytes) and CPU time (µs, user + system). */
export function usage(): { rss: number; cpuUs: number } {
  const cpu = process.cpuUsage();
  return { rss: process.memoryUsage().rss, cpuUs: cpu.user + cpu.system };
}

/**
 * The commands every PV-posting bench server answers: `stats` (the server's counters plus
 * {@link usage}), `update <n> <hz>`, `flood <n>`, `gc` (full GC, then rss).
 */
export function posterCommands(stats: () => object, poster: Poster) {
  return {
    stats: () => ({ ...stats(), ...usage() }),
    update: ([n, hz]: string[]) => {
      poster.update(Number(n), Number(hz));
      return { ok: true };
    },
    flood: ([n]: string[]) => {
      poster.flood(Number(n));
      return { ok: true };
    },
    gc: () => {
      Bun.gc(true);
      return { rss: process.memoryUsage().rss };
    },
  };
}

/**
 * Answers commands on stdin, one per line, until stdin ends: the handler named by the line's
 * first word gets the other words and returns the JSON reply (undefined: no reply). Lines naming
 * no handler are ignored.
 */
export async function serveCommands(
  handlers: Record<string, (args: string[]) => unknown>,
): Promise<void> {
  for await (const line of console) {
    const [cmd = "", ...args] = line.trim().split(/\s+/);
    if (!Object.hasOwn(handlers, cmd)) continue;
    const reply = handlers[cmd]?.(args);
    if (reply !== undefined) process.stdout.write(`${JSON.stringify(reply)}\n`);
  }
}
