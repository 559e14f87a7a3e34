/**
 * Per-plugin resource series, read at scrape time from each plugin process' procfs entries
 * (proc-usage.ts, cached a second): resident memory and CPU time, labelled by plugin. A plugin
 * without a process (stopped, ended) has no series.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import { procUsage } from "./proc-usage.ts";

export function pluginResourceMetrics(
  r: Registry,
  names: () => string[],
  pidOf: (name: string) => number | null,
): void {
  const usages = () => {
    const out: Array<{ plugin: string; rss: number; cpu: number }> = [];
    for (const plugin of names()) {
      const pid = pidOf(plugin);
      const u = pid === null ? null : procUsage(pid);
      if (u !== null) out.push({ plugin, rss: u.rssBytes, cpu: u.cpuSeconds });
    }
    return out;
  };
  new Gauge({
    name: "iocmng_plugin_resident_memory_bytes",
    help: "Resident memory (RSS) of a plugin's process.",
    labelNames: ["plugin"],
    registers: [r],
    collect() {
      this.reset();
      for (const u of usages()) this.set({ plugin: u.plugin }, u.rss);
    },
  });
  new Counter({
    name: "iocmng_plugin_cpu_seconds_total",
    help: "User and system CPU time of a plugin's process (restarts begin again at 0).",
    labelNames: ["plugin"],
    registers: [r],
    collect() {
      this.reset();
      for (const u of usages()) if (u.cpu > 0) this.inc({ plugin: u.plugin }, u.cpu);
    },
  });
}
