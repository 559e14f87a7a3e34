/**
 * Runs the "exiter" fixture (process.exit() in execute(), an unhandled rejection in initialize())
 * in a plain Bun process and prints what happened as one JSON line. Spawned by isolation.test.ts:
 * under `bun test`, a Worker's unhandled rejection ends the Worker whatever handlers it installs,
 * so the server's real behaviour can only be observed outside the test runner.
 */
import { destroyEnv, fixtureRepo, makeEnv, waitFor } from "./harness.ts";

const env = await makeEnv();
const repo = await fixtureRepo("exiter");
const out: Record<string, unknown> = {};
try {
  const r = await env.controller.add({ name: "exiter", kind: "task", git_url: repo.url });
  out.added = r.ok;
  await waitFor(() => (env.controller.get("task", "exiter")?.cycleCount ?? 0) >= 5, "5 cycles");
  const info = env.controller.get("task", "exiter");
  out.status = info?.status;
  out.message = info?.message;
  out.running = info?.running;
  out.cycles = info?.cycleCount;
  out.rejectionLogged = env.logs.some((l) => l.includes("nobody handles this"));
  out.exitLogged = env.logs.some((l) => l.includes("process.exit(3): refused"));
  out.removed = (await env.controller.remove("task", "exiter")).ok;
} finally {
  await destroyEnv(env);
  await repo.cleanup();
}
console.log(JSON.stringify(out));
