import { rtPriorityFromEnv } from "../../common/realtime.ts";
import { stringFlag } from "../args.ts";
import type { Command } from "../command.ts";
import { loadCliConfig } from "../config.ts";

/** `iocmng serve` (the default command): REST API + Channel Access server + plugins. */
export const serveCommand: Command = {
  name: "serve",
  summary: "serve the REST API and the Channel Access server (default)",
  usage: "iocmng serve [--host H] [--port P] [--config FILE]",
  details: [
    "Loads the configuration from the environment (IOCMNG_* variables, IOCMNG_CONFIG file),",
    "restores the plugins recorded in the state directory, then serves REST and Channel Access",
    "until SIGTERM/SIGINT (graceful stop, exit 0). Flags override the matching variables:",
    "--host IOCMNG_HOST, --port IOCMNG_PORT, --config IOCMNG_CONFIG. CA ports come from",
    "EPICS_CAS_SERVER_PORT / EPICS_CA_SERVER_PORT (default 5064).",
  ].join("\n"),
  flags: {
    host: { type: "string" },
    port: { type: "string" },
    config: { type: "string" },
  },
  maxPositionals: 0,
  async run(args, ctx) {
    const env = { ...ctx.env };
    const overrides = { host: "IOCMNG_HOST", port: "IOCMNG_PORT", config: "IOCMNG_CONFIG" };
    for (const [flag, variable] of Object.entries(overrides)) {
      const v = stringFlag(args, flag);
      if (v !== undefined) env[variable] = v;
    }
    const config = loadCliConfig(env);
    // IOCMNG_RT_PRIORITY: CA threads SCHED_FIFO as rsrv's when permitted (src/common/realtime.ts;
    // off by default); a bad value stops the start here, naming the variable. Only `serve`: a server
    // built in-process (tests) stays ordinary.
    const realtimePriority = rtPriorityFromEnv(env);
    // Loaded here, not at the top: `iocmng --version` or `validate` does not evaluate the server.
    const [{ createRootLogger }, { startServer }] = await Promise.all([
      import("../../log.ts"),
      import("../../server.ts"),
    ]);
    const log = createRootLogger(config.logLevel);
    // Signal handlers go in before the plugins are restored: SIGTERM during a slow boot exits 0.
    await startServer(config, log, { env, signals: true, caConfig: { realtimePriority } });
    // Serve until a signal handler exits the process.
    return await new Promise<number>(() => {});
  },
};
