import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdir } from "node:fs/promises";
import { makeRepo, type TestRepo } from "../helpers/git-e2e.ts";
import { COUNTER_TASK, DIAG_JOB, FAILING } from "./lib/plugins.ts";
import { py } from "./lib/pyepics.ts";
import { makeDirs, type ServerDirs, type SpawnedServer, spawnServer } from "./lib/server.ts";

/**
 * Everything the server must refuse, through the real server: each validation step failing
 * (asserting the step's name), malformed and hostile requests, and the bearer token. After every
 * refusal nothing is left behind: no plugin listed, no PV served, no clone on disk.
 */
let dirs: ServerDirs;
let srv: SpawnedServer;
const repos: TestRepo[] = [];
const TOKEN = "e2e-token-0123456789";
const auth = { authorization: `Bearer ${TOKEN}` };

beforeAll(async () => {
  dirs = await makeDirs();
  srv = await spawnServer(dirs, { env: { IOCMNG_API_TOKEN: TOKEN } });
});

afterAll(async () => {
  if (srv !== undefined) await srv.kill("SIGKILL");
  await Promise.all(repos.map((r) => r.remove()));
  await dirs?.remove();
});

async function repo(files: Record<string, string>): Promise<TestRepo> {
  const r = await makeRepo(files);
  repos.push(r);
  return r;
}

/** Nothing loaded, nothing cloned, and the name still free. */
async function expectNothingLeft(name: string): Promise<void> {
  expect((await srv.api("GET", "/tasks")).body.count).toBe(0);
  expect((await srv.api("GET", "/jobs")).body.count).toBe(0);
  expect((await srv.api("GET", `/tasks/${name}`)).status).toBe(404);
  const entries = await readdir(dirs.pluginsDir).catch(() => [] as string[]);
  expect(entries.filter((e) => e.toLowerCase().includes(name.toLowerCase()))).toEqual([]);
}

describe("validation pipeline: one failing step each, reported by name", () => {
  test("clone: repository that does not exist", async () => {
    const res = await srv.api(
      "POST",
      "/tasks",
      { name: "v-clone", git_url: `file://${dirs.root}/no-such-repo` },
      auth,
    );
    expect(res.status).toBe(422);
    expect((res.body.validation as { failedStep: string }).failedStep).toBe("clone");
    await expectNothingLeft("v-clone");
  });

  test("clone: branch that does not exist", async () => {
    const r = await repo(COUNTER_TASK);
    const res = await srv.api(
      "POST",
      "/tasks",
      { name: "v-branch", git_url: r.url, branch: "no-such-branch" },
      auth,
    );
    expect(res.status).toBe(422);
    expect((res.body.validation as { failedStep: string }).failedStep).toBe("clone");
    await expectNothingLeft("v-branch");
  });

  for (const [step, spec] of Object.entries(FAILING)) {
    test(`${step}`, async () => {
      const r = await repo(spec.files);
      const name = `v-${step}`;
      const body: Record<string, unknown> = { name, git_url: r.url };
      if (spec.path !== undefined) body.path = spec.path;
      const res = await srv.api("POST", "/tasks", body, auth);
      expect(res.status).toBe(422);
      expect(res.body.ok).toBe(false);
      const v = res.body.validation as { failedStep: string; steps: Array<{ step: string }> };
      expect(v.failedStep).toBe(step);
      expect(String(res.body.message).length).toBeGreaterThan(0);
      await expectNothingLeft(name);
    });
  }

  test("path escaping the clone is refused", async () => {
    const r = await repo(COUNTER_TASK);
    for (const path of ["../..", "/etc", "a/../../.."]) {
      const res = await srv.api("POST", "/tasks", { name: "v-escape", git_url: r.url, path }, auth);
      expect([400, 422]).toContain(res.status);
      expect(res.body.ok).toBe(false);
      const step = (res.body.validation as { failedStep?: string } | undefined)?.failedStep;
      expect(["request", "path"]).toContain(step ?? "");
    }
    await expectNothingLeft("v-escape");
  });

  test("path through a symlink that leaves the clone is refused", async () => {
    const outside = await repo(COUNTER_TASK); // a valid plugin dir outside the clone
    const r = await makeRepo(
      { "README.md": "decoy\n" },
      { symlinks: { evil: outside.dir, "nested/evil2": "../../" } },
    );
    repos.push(r);
    for (const path of ["evil", "nested/evil2"]) {
      const res = await srv.api("POST", "/tasks", { name: "v-link", git_url: r.url, path }, auth);
      expect(res.status).toBe(422);
      expect((res.body.validation as { failedStep: string }).failedStep).toBe("path");
    }
    await expectNothingLeft("v-link");
  });

  test("a job repository under /tasks is refused and leaves nothing loaded", async () => {
    const r = await repo(DIAG_JOB);
    const res = await srv.api("POST", "/tasks", { name: "wrong-kind", git_url: r.url }, auth);
    expect(res.status).toBe(422);
    expect(res.body.ok).toBe(false);
    await expectNothingLeft("wrong-kind");
    const check = await py(`out(absent("IOCMNG:WRONG-KIND:STATUS"))`, srv.caEnv);
    expect(check.result).toBe(true);
  });

  test("a task repository under /jobs is refused", async () => {
    const r = await repo(COUNTER_TASK);
    const res = await srv.api("POST", "/jobs", { name: "wrong-kind2", git_url: r.url }, auth);
    expect(res.status).toBe(422);
    await expectNothingLeft("wrong-kind2");
  });
});

describe("bad requests", () => {
  const post = (body: unknown, headers: Record<string, string> = auth) =>
    srv.api("POST", "/tasks", body, headers);

  test("malformed JSON is 400", async () => {
    const res = await post('{"name": "x", "git_url": ');
    expect(res.status).toBe(400);
    expect(res.body.ok).toBe(false);
  });

  test("wrong types and missing fields are 422 naming the field", async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ name: "x" }, /git_url/],
      [{ git_url: "file:///x" }, /name/],
      [{ name: 12, git_url: "file:///x" }, /name/],
      [{ name: "x", git_url: "file:///x", parameters: "a=b" }, /parameters/],
      [{ name: "x", git_url: "file:///x", auto_start: 1 }, /auto_start/],
    ];
    for (const [body, field] of cases) {
      const res = await post(body);
      expect(res.status).toBe(422);
      expect(String(res.body.message)).toMatch(field);
    }
  });

  test("bad plugin names are refused", async () => {
    for (const name of ["", "a b", "../etc", "x".repeat(129), "name;rm", "ünï"]) {
      const res = await post({ name, git_url: "file:///x" });
      expect(res.status).toBe(422);
    }
  });

  test("a huge body is 413 in the usual shape, declared or chunked", async () => {
    const huge = { name: "x", git_url: "file:///x", parameters: { y: "z".repeat(1 << 20) } };
    const res = await post(huge);
    expect(res.status).toBe(413);
    expect(res.body.ok).toBe(false);
    const text = JSON.stringify(huge);
    const chunked = await fetch(`${srv.base}/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json", ...auth },
      body: new ReadableStream<Uint8Array>({
        start(c) {
          for (let i = 0; i < text.length; i += 65536) {
            c.enqueue(new TextEncoder().encode(text.slice(i, i + 65536)));
          }
          c.close();
        },
      }),
    });
    expect(chunked.status).toBe(413);
    expect(((await chunked.json()) as { ok: boolean }).ok).toBe(false);
  });

  test("hostile git URLs are refused before git runs", async () => {
    const marker = `${dirs.root}/pwned`;
    for (const git_url of [
      "--upload-pack=touch",
      `--upload-pack=touch ${marker}`,
      "-oProxyCommand=x",
      `-c core.sshCommand=touch ${marker}`,
      "ext::sh",
      `ext::sh -c touch% ${marker}`,
      "fd::17",
      "http://insecure.invalid/repo.git",
      "git://host.invalid/repo",
      "/absolute/path/without/scheme",
      "https://user:token@host.invalid/repo.git",
    ]) {
      const res = await post({ name: "hostile", git_url });
      expect(res.status).toBe(400);
      expect(res.body.ok).toBe(false);
      expect((res.body.validation as { failedStep?: string } | undefined)?.failedStep).toBe(
        "request",
      );
    }
    // An option smuggled into the host part: git's own guard refuses it ("strange hostname").
    const smuggled = await post({
      name: "hostile",
      git_url: `ssh://-oProxyCommand=touch%20${marker}/x`,
    });
    expect([400, 422]).toContain(smuggled.status);
    expect(await Bun.file(marker).exists()).toBe(false);
    await expectNothingLeft("hostile");
  });

  test("a PAT never comes back in a response", async () => {
    const pat = "ghp_E2ESECRET0123456789";
    const res = await post({ name: "private", git_url: `file://${dirs.root}/nope`, pat });
    expect(res.status).toBe(422);
    expect(JSON.stringify(res.body)).not.toContain(pat);
    expect(srv.output()).not.toContain(pat);
  });

  test("unknown names are 404", async () => {
    expect((await srv.api("GET", "/tasks/nope")).status).toBe(404);
    expect((await srv.api("GET", "/jobs/nope/pvs")).status).toBe(404);
    expect((await srv.api("DELETE", "/tasks/nope", undefined, auth)).status).toBe(404);
    expect((await srv.api("POST", "/jobs/nope/run", undefined, auth)).status).toBe(404);
    expect((await srv.api("POST", "/tasks/nope/restart", undefined, auth)).status).toBe(404);
  });

  test("the name is taken: 409", async () => {
    const r = await repo(COUNTER_TASK);
    const first = await post({ name: "twice", git_url: r.url });
    expect(first.status).toBe(201);
    const second = await post({ name: "twice", git_url: r.url });
    expect(second.status).toBe(409);
    expect((await srv.api("POST", "/jobs", { name: "twice", git_url: r.url }, auth)).status).toBe(
      409,
    );
    expect((await srv.api("DELETE", "/tasks/twice", undefined, auth)).status).toBe(200);
  });
});

describe("bearer token", () => {
  test("mutating requests without it are 401 and change nothing; reads are open", async () => {
    const r = await repo(COUNTER_TASK);
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: "Bearer wrong" },
      { authorization: TOKEN },
    ];
    for (const headers of attempts) {
      const res = await srv.api("POST", "/tasks", { name: "noauth", git_url: r.url }, headers);
      expect(res.status).toBe(401);
      expect(res.body.ok).toBe(false);
    }
    await expectNothingLeft("noauth");
    expect((await srv.api("GET", "/health")).status).toBe(200);
    expect((await srv.api("GET", "/tasks")).status).toBe(200);
  });
});
