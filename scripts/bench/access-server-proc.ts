/**
 * Benchmark server process for scripts/bench/access.ts (not run by hand): serves BENCH:SP (a
 * writable double) and BENCH:MODE on a random loopback port with access security `mode`:
 *   off    no access policy at all (the CA server as before access security)
 *   audit  the policy without a file: every write allowed and audited
 *   acf50  the policy with a 50-rule file (the granting rule last, CALC rules on BENCH:MODE)
 * The audit log line of every write is serialised and written to /dev/null, as a real log would
 * cost. Prints `READY <port>`; answers `cpu` on stdin with this process's CPU microseconds.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import pino from "pino";
import { AuditLog } from "../../src/access/audit.ts";
import { SecurityPolicy } from "../../src/access/policy.ts";
import { AccessSecurity } from "../../src/access/security.ts";
import { CaServer } from "../../src/ca/server/index.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { fiftyRules } from "./access-rules.ts";
import { serveCommands, usage } from "./proc-lib.ts";

const mode = process.argv[2] ?? "off";
const registry = new PvRegistry();
registry.add({ name: "BENCH:SP", kind: "double", writable: true, initial: 0 });
registry.add({ name: "BENCH:MODE", kind: "long", writable: true, initial: 1 });

let access: SecurityPolicy | null = null;
if (mode !== "off") {
  let file: string | undefined;
  if (mode === "acf50") {
    file = join(mkdtempSync(join(tmpdir(), "iocmng-bench-acf-")), "bench.acf");
    // The login name libca sends (getpwuid(getuid())); os.userInfo() may say "unknown" in containers.
    const user = Bun.spawnSync(["id", "-un"]).stdout.toString().trim();
    writeFileSync(file, fiftyRules(user));
  }
  const security = await AccessSecurity.open({ file, source: registry });
  if (file) rmSync(dirname(file), { recursive: true, force: true });
  // As in production (pino writes each line synchronously to stdout), but to /dev/null.
  const log = pino({ level: "info" }, pino.destination({ dest: "/dev/null", sync: true }));
  access = new SecurityPolicy(security, new AuditLog(mode === "nolog" ? {} : { log }), (pv) =>
    pv.name === "BENCH:SP" ? "BENCH" : undefined,
  );
}
const server = new CaServer({
  registry,
  logger: pino({ level: "warn" }),
  access,
  config: { serverPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false, beaconAddrs: [] },
});
await server.start();
console.log(`READY ${server.tcpPort}`);
await serveCommands({ cpu: () => ({ cpuUs: usage().cpuUs }) });
