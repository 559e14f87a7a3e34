import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeRepo, type TestRepo } from "../helpers/git-e2e.ts";
import { type HttpsGitHost, startHttpsGitHost } from "../helpers/git-https.ts";
import { COUNTER_TASK } from "./lib/plugins.ts";
import { makeDirs, type ServerDirs, spawnServer } from "./lib/server.ts";

/**
 * Private repositories for real: an HTTPS git host on loopback that refuses any request without
 * the token. The token reaches git from IOCMNG_CONFIG's `pat_env` (a Kubernetes Secret in
 * production) and from a REST `pat`, and appears nowhere: not in responses, logs, clones or state.
 */
const TOKEN = "glpat-Zq9private7token3xyz";
let host: HttpsGitHost;
let repo: TestRepo;
let dirs: ServerDirs;

beforeAll(async () => {
  host = await startHttpsGitHost({ projectRoot: tmpdir(), token: TOKEN });
  repo = await makeRepo(COUNTER_TASK);
  dirs = await makeDirs();
});
afterAll(async () => {
  await host?.stop();
  await repo?.remove();
  await dirs?.remove();
});

/** Every file under `root` (text), for secrecy checks. */
async function allText(root: string): Promise<string> {
  const files = await readdir(root, { recursive: true }).catch(() => [] as string[]);
  let text = "";
  for (const f of files) text += await readFile(join(root, String(f)), "utf8").catch(() => "");
  return text;
}

describe("private repository over HTTPS", () => {
  test("pat_env in IOCMNG_CONFIG and pat in REST clone it; the token is never shown or stored", async () => {
    const url = host.urlFor(repo.dir);
    const cfg = join(dirs.root, "iocmng.yaml");
    await Bun.write(
      cfg,
      `prefix: PRIV\npat_env_allow: [PRIVATE_GIT_TOKEN]\ntasks:\n  - name: declared\n    git_url: ${url}\n    pat_env: PRIVATE_GIT_TOKEN\n`,
    );
    const srv = await spawnServer(dirs, {
      env: { IOCMNG_CONFIG: cfg, PRIVATE_GIT_TOKEN: TOKEN, HOME: host.home },
    });
    const bodies: string[] = [];
    const api = async (m: string, p: string, b?: unknown) => {
      const r = await srv.api(m, p, b);
      bodies.push(JSON.stringify(r.body));
      return r;
    };
    try {
      // Loaded at boot from the private host with the token of the named variable.
      const declared = await api("GET", "/tasks/declared");
      expect(declared.status).toBe(200);
      expect(declared.body.running).toBe(true);
      // Without credentials the host refuses: a clear clone failure, nothing loaded.
      const anon = await api("POST", "/tasks", { name: "anon", git_url: url });
      expect(anon.status).toBe(422);
      expect((anon.body.validation as { failedStep: string }).failedStep).toBe("clone");
      expect(String(anon.body.message)).toContain("git clone failed");
      // A wrong token: refused too, and the wrong token is not echoed either.
      const wrong = await api("POST", "/tasks", { name: "wrong", git_url: url, pat: "nope-123" });
      expect(wrong.status).toBe(422);
      expect(JSON.stringify(wrong.body)).not.toContain("nope-123");
      // The right token in the request.
      const viaPat = await api("POST", "/tasks", { name: "viapat", git_url: url, pat: TOKEN });
      expect(viaPat.status).toBe(201);
      // restart re-clones from the private host: pat_env is read again, the REST pat kept in memory.
      expect((await api("POST", "/tasks/declared/restart")).status).toBe(200);
      expect((await api("POST", "/tasks/viapat/restart")).status).toBe(200);
      const list = await api("GET", "/tasks");
      expect(list.body.count).toBe(2);
    } finally {
      expect(await srv.kill("SIGTERM")).toBe(0);
    }
    // The host really checked: the token came as Basic credentials.
    expect(host.authHeaders).toContain(`Basic ${btoa(`x-access-token:${TOKEN}`)}`);
    for (const where of [
      bodies.join("\n"),
      srv.output(),
      await allText(dirs.stateDir),
      await allText(dirs.pluginsDir),
    ]) {
      expect(where).not.toContain(TOKEN);
    }
    expect(await allText(dirs.stateDir)).toContain("PRIVATE_GIT_TOKEN");
  }, 120_000);
});
