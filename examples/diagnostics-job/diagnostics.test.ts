import { expect, test } from "bun:test";
import { runLifecycle } from "iocmng/testing";
import { Diagnostics } from "./diagnostics.ts";

test("returns a successful result and publishes it on PVs", async () => {
  const run = await runLifecycle(Diagnostics, {
    parameters: { label: "bench" },
    pvs: { SYSTEM_NAME: "", LAST_RSS_MB: 0 },
  });
  expect(run.result?.success).toBe(true);
  expect(run.result?.message).toBe("Diagnostics OK");
  const data = run.result?.data as { label: string; rss_mb: number };
  expect(data.label).toBe("bench");
  expect(data.rss_mb).toBeGreaterThan(0);
  expect(run.pvs.SYSTEM_NAME).toStartWith("bench (");
  expect(run.pvs.STATUS).toBe("SUCCESS");
});
