/**
 * plugins.yaml (IOCMNG_PLUGINS_CONFIG) parsing and boot order, and the --pvout file format.
 */
import { describe, expect, test } from "bun:test";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { orderBootList, parseBootList } from "../../src/compat/boot-list.ts";
import { pvListText, writePvList } from "../../src/compat/pvlist.ts";

describe("boot list", () => {
  test("2.7.9 keys with their defaults, order by autostart_order then name", () => {
    const list = parseBootList(
      `
plugins:
  - {name: zeta, git_url: "https://h/z.git"}
  - {name: beta, git_url: "https://h/b.git", autostart_order: 2, pat_env: GIT_TOKEN}
  - {name: alpha, local_path: /srv/alpha, autostart_order: 1, auto_start: false, parameters: {x: 1}}
  - {name: gamma, git_url: "https://h/g.git", autostart_order: "first", kind: job}
`,
      "plugins.yaml",
    );
    expect(list[0]).toEqual({
      name: "zeta",
      git_url: "https://h/z.git",
      path: "",
      branch: "main",
      auto_start: true,
      auto_start_on_boot: false,
      autostart_order: null,
      parameters: {},
    });
    expect(orderBootList(list).map((e) => e.name)).toEqual(["alpha", "beta", "gamma", "zeta"]);
    expect(list[2]).toMatchObject({
      local_path: "/srv/alpha",
      auto_start: false,
      parameters: { x: 1 },
    });
    expect(list[3]?.kind).toBe("job");
    expect(parseBootList("", "f")).toEqual([]);
    expect(parseBootList("plugins:", "f")).toEqual([]);
  });
  const bad: [string, string][] = [
    [
      "plugins: [{name: a, git_url: u, pat: ghp_secret}]",
      "pat: a token is not accepted in a file; put it in an environment variable of the server and name it with pat_env:",
    ],
    ["plugins: [{name: a, path: x}]", "Missing name and plugin source (git_url or local_path)"],
    ["plugins: [{name: 'a b', git_url: u}]", "name: 1..128"],
    ["plugins: [{name: a, git_url: u, brnach: x}]", "brnach: unknown key"],
    ["plugins: [{name: a, git_url: u}, {name: A, git_url: v}]", "name A appears twice"],
    ["plugins: {a: 1}", "plugins: expected a list"],
    [
      "plugins: [{name: a, git_url: u, auto_start: yes-please}]",
      "auto_start: expected true or false",
    ],
    ["plugins: [{name: a, git_url: u, pat_env: 'X Y'}]", "pat_env: expected the name"],
    ["[1, 2", "not valid YAML"],
  ];
  for (const [text, msg] of bad) {
    test(`refuses ${text}`, () => {
      expect(() => parseBootList(text, "plugins.yaml")).toThrow(msg);
    });
  }
  test("the token never appears in the refusal", () => {
    try {
      parseBootList("plugins: [{name: a, git_url: u, pat: ghp_secret}]", "p.yaml");
    } catch (e) {
      expect((e as Error).message).not.toContain("ghp_secret");
    }
  });
});

describe("pv list (--pvout)", () => {
  test("sorted by plain string order, one per line, trailing newline, parents created", async () => {
    expect(pvListText(["T:b", "T:A", "T:a", "T:B", "T:A"])).toBe("T:A\nT:B\nT:a\nT:b\n");
    const dir = await mkdtemp(join(tmpdir(), "pvlist-"));
    const file = join(dir, "ioc1", "deep", "pvlist.txt");
    await writePvList(file, ["X:ENABLE", "X:CYCLE_COUNT"]);
    expect(await readFile(file, "utf8")).toBe("X:CYCLE_COUNT\nX:ENABLE\n");
    await rm(dir, { recursive: true, force: true });
  });
});
