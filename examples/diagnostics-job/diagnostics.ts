import { JobBase, JobResult } from "iocmng";

/** Reports facts about the process the plugin runs in; publishes two of them as PVs. */
export class Diagnostics extends JobBase {
  override async initialize(): Promise<void> {
    this.logger.info("diagnostics ready");
  }

  override async execute(): Promise<JobResult> {
    const rssMb = process.memoryUsage().rss / 1e6;
    const info = {
      label: String(this.parameters.label ?? ""),
      runtime: `bun ${Bun.version}`,
      platform: `${process.platform}/${process.arch}`,
      uptime_s: Math.round(process.uptime()),
      rss_mb: Math.round(rssMb * 10) / 10,
    };
    this.setPv("SYSTEM_NAME", `${info.label} (${info.platform})`.slice(0, 39));
    this.setPv("LAST_RSS_MB", info.rss_mb);
    return JobResult.ok(info, "Diagnostics OK");
  }
}
