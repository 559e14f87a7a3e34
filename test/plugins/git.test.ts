/**
 * Git safety: URL and branch checks against hostile input, and PAT secrecy (never in argv, the
 * clone's .git/config, error messages, logs, API results or the state on disk).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, readdirSync, readFileSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { checkBranch, checkGitUrl } from "../../src/common/git-url.ts";
import {
  CREDENTIAL_HELPER,
  cloneArgs,
  credentialText,
  gitClone,
  PAT_ENV,
  scrub,
} from "../../src/plugins/git.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { destroyEnv, type Env, fixtureFiles, makeEnv } from "./harness.ts";

setDefaultTimeout(60_000);

const TOKEN = "ghp_SECRETtoken1234567890abcdef";

describe("URL checks", () => {
  test("accepted forms", () => {
    for (const url of [
      "https://github.com/org/repo.git",
      "https://gitlab.example.org:8443/group/sub/repo",
      "ssh://git@github.com/org/repo.git",
      "ssh://git@host:2222/repo",
      "git@github.com:org/repo.git",
      "deploy@host.example:repos/x",
      "file:///srv/git/repo",
      "file://localhost/srv/git/repo",
    ]) {
      expect(checkGitUrl(url)).toBeNull();
    }
  });
  test("hostile and unsupported forms are refused with a reason", () => {
    const cases: Array<[unknown, string]> = [
      ["ext::sh -c 'touch /tmp/x'", "whitespace"],
      ["ext::sh%20-c%20touch", "remote helper"],
      ["fd::3", "remote helper"],
      ["-uhttps://x", "'-'"],
      ["--upload-pack=touch", "'-'"],
      ["http://example.com/r", "not allowed"],
      ["git://example.com/r", "not allowed"],
      ["ftp://example.com/r", "not allowed"],
      ["https://tok@github.com/r", "credentials"],
      ["https://u:p@github.com/r", "password"],
      ["ssh://u:p@github.com/r", "password"],
      ["file://evil.com/etc", "local"],
      ["host:path", "not an accepted"],
      ["git@-oProxyCommand=x:r", "not an accepted"],
      ["git@host::x", "not an accepted"],
      ["/local/path", "not an accepted"],
      ["https://x/\u0000", "control"],
      ["https://x/r\n", "control"],
      ["", "empty"],
      [null, "empty"],
      [42, "empty"],
      [`https://h/${"a".repeat(3000)}`, "longer"],
    ];
    for (const [url, why] of cases) {
      const err = checkGitUrl(url);
      expect(err).not.toBeNull();
      expect(err).toContain(why);
    }
  });
  test("branch names", () => {
    for (const b of ["main", "v1.2.3", "feature/x-y", "release_2"])
      expect(checkBranch(b)).toBeNull();
    for (const b of [
      "-b",
      "--orphan=x",
      "a..b",
      "a b",
      "x.lock",
      "a@{1}",
      "/a",
      "a/",
      "",
      "a\nb",
      "x".repeat(300),
    ]) {
      expect(checkBranch(b)).not.toBeNull();
    }
  });
  test("scrub removes tokens and URL credentials", () => {
    expect(scrub(`fatal: https://x:${TOKEN}@h/r ${TOKEN}`, [TOKEN])).not.toContain(TOKEN);
    expect(scrub("https://user:pw@host/x", [])).toBe("https://***@host/x");
  });
});

describe("clone", () => {
  let repo: TestRepo;
  beforeAll(async () => {
    repo = await createRepo({
      files: { "a.txt": "main\n" },
      branches: { dev: { "a.txt": "dev\n" } },
      tags: ["v1.0"],
    });
  });
  afterAll(async () => {
    await repo.cleanup();
  });

  test("argv carries a credential helper reading fd 3, never the token", () => {
    const args = cloneArgs({ url: "https://example.com/r.git", dest: "/tmp/x", pat: TOKEN });
    expect(args.join(" ")).not.toContain(TOKEN);
    expect(args.join(" ")).toContain("credential.helper=!f()");
    // Option injection is impossible: the URL comes after "--".
    expect(args.indexOf("--")).toBe(args.length - 3);
  });

  test("the credential helper hands git the token from fd 3, not from the environment", async () => {
    // `git credential fill` runs the helper exactly as a clone would, without any network.
    const p = Bun.spawn(
      [
        "git",
        "-c",
        "credential.helper=",
        "-c",
        `credential.helper=${CREDENTIAL_HELPER}`,
        "credential",
        "fill",
      ],
      {
        stdio: [
          new TextEncoder().encode("protocol=https\nhost=git.example.org\n\n"),
          "pipe",
          "pipe",
          "pipe",
        ],
        // The old variable set to a decoy: the helper must not read it.
        env: { ...process.env, [PAT_ENV]: "decoy", GIT_TERMINAL_PROMPT: "0" },
      },
    );
    const fd = p.stdio[3] as number;
    writeSync(fd, credentialText(TOKEN));
    closeSync(fd);
    const out = await new Response(p.stdout as ReadableStream<Uint8Array>).text();
    expect(await p.exited).toBe(0);
    expect(out).toContain(`password=${TOKEN}`);
    expect(out).toContain("username=x-access-token");
  });

  test("network URLs clone shallow; file:// URLs are copied from the path, without hardlinks", () => {
    const net = cloneArgs({ url: "https://example.com/r.git", dest: "/tmp/x" });
    expect(net.slice(net.indexOf("clone"))).toEqual([
      "clone",
      "--depth",
      "1",
      "--single-branch",
      "--no-tags",
      "--quiet",
      "--",
      "https://example.com/r.git",
      "/tmp/x",
    ]);
    for (const url of ["file:///srv/my%20repo", "file://localhost/srv/my%20repo"]) {
      const local = cloneArgs({ url, dest: "/tmp/x", branch: "dev" });
      expect(local).toContain("--no-hardlinks");
      expect(local).not.toContain("--depth");
      expect(local.slice(-3)).toEqual(["--", "/srv/my repo", "/tmp/x"]);
    }
  });

  test("branch and tag clones; the token never reaches .git/config; no inode shared with the source", async () => {
    const tmp = (await import("node:fs/promises")).mkdtemp;
    const base = await tmp("/tmp/iocmng-clone-");
    for (const [branch, want] of [
      ["dev", "dev\n"],
      ["v1.0", "main\n"],
    ] as const) {
      const dest = join(base, branch);
      const { commit } = await gitClone({ url: repo.url, dest, branch, pat: TOKEN });
      expect(commit).toMatch(/^[0-9a-f]{40}$/);
      // Read from the clone's files: the same commit git itself resolves.
      const rev = Bun.spawnSync(["git", "-C", dest, "rev-parse", "HEAD"]).stdout.toString().trim();
      expect(commit).toBe(rev);
      expect(readFileSync(join(dest, "a.txt"), "utf8")).toBe(want);
      const cfg = readFileSync(join(dest, ".git", "config"), "utf8");
      expect(cfg).not.toContain(TOKEN);
      expect(cfg).not.toContain("credential");
      // A local copy: every object file is its own inode (a plugin of the server's uid could
      // otherwise rewrite the operator's repository through a hardlink).
      const objects = objectFiles(join(dest, ".git", "objects"));
      expect(objects.length).toBeGreaterThan(0);
      for (const f of objects) expect({ f, links: statSync(f).nlink }).toEqual({ f, links: 1 });
    }
    await (await import("node:fs/promises")).rm(base, { recursive: true, force: true });
  });

  test("a failing https clone with a token: the error names the failure, not the token", async () => {
    // Port 9 on loopback: connection refused, no network needed.
    let msg = "";
    try {
      await gitClone({
        url: "https://127.0.0.1:9/org/repo.git",
        dest: "/tmp/iocmng-never-created",
        pat: TOKEN,
        timeoutMs: 30_000,
      });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain("git clone failed");
    expect(msg).not.toContain(TOKEN);
  });
});

function objectFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name));
}

describe("PAT secrecy through the controller", () => {
  let env: Env;
  let repo: TestRepo;
  beforeAll(async () => {
    env = await makeEnv();
    repo = await createRepo({ files: await fixtureFiles("counter") });
  });
  afterAll(async () => {
    await destroyEnv(env);
    await repo.cleanup();
  });

  test("token never in responses, logs, clone config or state files", async () => {
    const ok = await env.controller.add({
      name: "secret",
      kind: "task",
      git_url: repo.url,
      pat: TOKEN,
    });
    expect(ok.ok).toBe(true);
    expect(JSON.stringify(ok)).not.toContain(TOKEN);
    expect(JSON.stringify(env.controller.list("task"))).not.toContain(TOKEN);
    const bad = await env.controller.add({
      name: "secret2",
      kind: "task",
      git_url: "https://127.0.0.1:9/org/private.git",
      pat: TOKEN,
    });
    expect(bad.ok).toBe(false);
    expect(JSON.stringify(bad)).not.toContain(TOKEN);
    await env.state.flush();
    expect(env.logs.join("")).not.toContain(TOKEN);
    for (const f of walk(env.root)) {
      if (statSync(f).size > 1 << 20) continue;
      expect(readFileSync(f).includes(TOKEN)).toBe(false);
    }
    expect((await env.controller.remove("task", "secret")).ok).toBe(true);
  });
});

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

test("plugins do not see the API token or git token variables in their environment", async () => {
  const names = ["IOCMNG_API_TOKEN", "MY_GIT_TOKEN", "EPICS_HARMLESS_VAR"];
  const saved = names.map((n) => [n, process.env[n]] as const);
  process.env.IOCMNG_API_TOKEN = "api-secret";
  process.env.MY_GIT_TOKEN = "git-secret";
  process.env.EPICS_HARMLESS_VAR = "visible";
  const env = await makeEnv({ config: { patEnvAllow: ["MY_GIT_TOKEN"] } });
  const repo = await createRepo({
    files: {
      "j.ts": `import { JobBase } from "iocmng";
export class EnvJob extends JobBase {
  initialize() {}
  execute() {
    return { success: true, data: { api: process.env.IOCMNG_API_TOKEN ?? null, git: process.env.MY_GIT_TOKEN ?? null, other: process.env.EPICS_HARMLESS_VAR ?? null }, message: "" };
  }
}
`,
    },
  });
  try {
    const add = await env.controller.add({
      name: "envjob",
      kind: "job",
      git_url: repo.url,
      pat_env: "MY_GIT_TOKEN",
    });
    expect(add.ok).toBe(true);
    const r = await env.controller.runJob("envjob");
    expect(r.ok && r.value.data).toEqual({ api: null, git: null, other: "visible" });
  } finally {
    await destroyEnv(env);
    await repo.cleanup();
    for (const [n, v] of saved) {
      if (v === undefined) delete process.env[n];
      else process.env[n] = v;
    }
  }
});
