import { afterEach, describe, expect, test } from "bun:test";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { atomicWriteFile, type PluginRecord, StateStore } from "../../src/state/index.ts";
import { padFor } from "./crash-writer.ts";

const logger = pino({ level: "silent" });
const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "iocmng-state-"));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  for (const d of dirs.splice(0)) {
    await chmod(d, 0o700).catch(() => {});
    await rm(d, { recursive: true, force: true });
  }
});

function rec(name: string, extra: Partial<PluginRecord> = {}): PluginRecord {
  return {
    name,
    kind: "task",
    git_url: `file:///repos/${name}`,
    parameters: { threshold: 1 },
    auto_start: true,
    cloneDir: `/data/plugins/${name}`,
    addedAt: "2026-11-24T20:00:00.000Z",
    ...extra,
  };
}

/** Waits (bounded) until `fn` is true; no timing is asserted, only the outcome. */
async function until(fn: () => Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return true;
    await Bun.sleep(20);
  }
  return fn();
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

describe("atomicWriteFile", () => {
  test("creates and replaces a file, leaving no temporary behind", async () => {
    const d = await tempDir();
    const f = join(d, "a.json");
    await atomicWriteFile(f, "one");
    await atomicWriteFile(f, new TextEncoder().encode("two"));
    expect(await readFile(f, "utf8")).toBe("two");
    expect(await readdir(d)).toEqual(["a.json"]);
  });

  test("a failed write leaves the old file and no temporary", async () => {
    const d = await tempDir();
    const f = join(d, "a.json");
    await atomicWriteFile(f, "old");
    // Renaming a file over a non-empty directory fails: the write must be undone.
    const target = join(d, "dir-target");
    await mkdir(join(target, "x"), { recursive: true });
    await expect(atomicWriteFile(target, "new")).rejects.toThrow();
    expect((await readdir(d)).sort()).toEqual(["a.json", "dir-target"]);
    await expect(atomicWriteFile(join(d, "missing", "f"), "x")).rejects.toThrow();
    expect(await readFile(f, "utf8")).toBe("old");
  });
});

describe("StateStore: plugin registry", () => {
  test("an empty directory loads as empty state and is created if missing", async () => {
    const d = join(await tempDir(), "nested", "state");
    const store = new StateStore(d, logger);
    expect(await store.load()).toEqual({ plugins: [], warnings: [] });
    expect(await exists(join(d, "autosave"))).toBe(true);
  });

  test("records survive a new store instance; remove deletes them", async () => {
    const d = await tempDir();
    const a = new StateStore(d, logger);
    await a.load();
    await a.putPlugin(rec("alpha", { branch: "v1", path: "src", pat_env: "GIT_TOKEN" }));
    await a.putPlugin(rec("beta", { kind: "job", auto_start: false }));
    await a.putPlugin(rec("alpha", { parameters: { threshold: 2 } }));
    const b = new StateStore(d, logger);
    const loaded = await b.load();
    expect(loaded.warnings).toEqual([]);
    expect(loaded.plugins).toEqual([
      rec("alpha", { parameters: { threshold: 2 } }),
      rec("beta", { kind: "job", auto_start: false }),
    ]);
    await b.removePlugin("alpha");
    await b.removePlugin("never-there");
    expect((await new StateStore(d, logger).load()).plugins.map((p) => p.name)).toEqual(["beta"]);
  });

  test("a PAT smuggled into a record never reaches the disk", async () => {
    const d = await tempDir();
    const s = new StateStore(d, logger);
    await s.load();
    const withPat = { ...rec("alpha"), pat: "ghp_SECRET123" } as PluginRecord;
    await s.putPlugin(withPat);
    const text = await readFile(join(d, "plugins.json"), "utf8");
    expect(text).not.toContain("ghp_SECRET123");
    expect(text).toContain("alpha");
  });

  test("an invalid record is refused and changes nothing", async () => {
    const d = await tempDir();
    const s = new StateStore(d, logger);
    await s.load();
    await s.putPlugin(rec("ok"));
    await expect(s.putPlugin(rec("../escape"))).rejects.toThrow("invalid plugin record");
    await expect(s.putPlugin({ ...rec("x"), kind: "daemon" as "task" })).rejects.toThrow(
      "kind must be task or job",
    );
    expect((await new StateStore(d, logger).load()).plugins.map((p) => p.name)).toEqual(["ok"]);
  });

  test("concurrent puts all land (writes are serialized)", async () => {
    const d = await tempDir();
    const s = new StateStore(d, logger);
    await s.load();
    await Promise.all(Array.from({ length: 30 }, (_, i) => s.putPlugin(rec(`p${i}`))));
    const loaded = await new StateStore(d, logger).load();
    expect(loaded.plugins.length).toBe(30);
    expect((await readdir(d)).filter((n) => n.includes(".tmp-"))).toEqual([]);
  });

  const corrupt: [string, string | Uint8Array, string][] = [
    ["truncated JSON", '{"version":1,"plugins":[{"name":"a"', "not valid JSON"],
    ["binary junk", new Uint8Array([0xff, 0xfe, 0x00, 0x81]), "not valid UTF-8"],
    ["wrong shape", '{"version":1,"plugins":{"a":1}}', "not a plugin registry"],
    ["a JSON string", '"hello"', "not a plugin registry"],
    ["a future version", '{"version":99,"plugins":[]}', "unsupported format version 99"],
    ["empty file", "", "not valid JSON"],
  ];
  test.each(corrupt)(
    "a corrupt file (%s) is moved aside and boot goes on",
    async (_n, content, why) => {
      const d = await tempDir();
      await writeFile(join(d, "plugins.json"), content);
      const s = new StateStore(d, logger);
      const r = await s.load();
      expect(r.plugins).toEqual([]);
      expect(r.warnings.length).toBe(1);
      expect(r.warnings[0]).toContain(why);
      expect(r.warnings[0]).toContain("moved aside");
      const names = await readdir(d);
      expect(names).not.toContain("plugins.json");
      const aside = names.find((n) => n.startsWith("plugins.json.corrupt-"));
      expect(aside).toBeDefined();
      const original = typeof content === "string" ? new TextEncoder().encode(content) : content;
      expect(Buffer.from(await readFile(join(d, aside!))).equals(Buffer.from(original))).toBe(true);
      // And the store works afterwards.
      await s.putPlugin(rec("fresh"));
      expect((await new StateStore(d, logger).load()).plugins.map((p) => p.name)).toEqual([
        "fresh",
      ]);
    },
  );

  test("an unreadable registry (a directory in its place) is moved aside", async () => {
    const d = await tempDir();
    await mkdir(join(d, "plugins.json"));
    const r = await new StateStore(d, logger).load();
    expect(r.plugins).toEqual([]);
    expect(r.warnings[0]).toContain("unreadable (EISDIR)");
  });

  test("bad records are skipped, good ones kept, and the original is copied aside", async () => {
    const d = await tempDir();
    const doc = {
      version: 1,
      plugins: [rec("good"), { name: "bad name", kind: "task" }, rec("good"), 42, rec("other")],
    };
    await writeFile(join(d, "plugins.json"), JSON.stringify(doc));
    const r = await new StateStore(d, logger).load();
    expect(r.plugins.map((p) => p.name)).toEqual(["good", "other"]);
    expect(r.warnings[0]).toContain("skipped 3 unusable record(s)");
    expect((await readdir(d)).some((n) => n.startsWith("plugins.json.corrupt-"))).toBe(true);
  });

  test("stale temporaries of a killed writer are removed at load", async () => {
    const d = await tempDir();
    await writeFile(join(d, ".plugins.json.tmp-999999-3"), "partial");
    await writeFile(join(d, "autosave-not-tmp"), "keep");
    await new StateStore(d, logger).load();
    expect((await readdir(d)).sort()).toEqual(["autosave", "autosave-not-tmp"]);
  });

  test("a state directory that cannot be created is a clear error", async () => {
    const d = await tempDir();
    await writeFile(join(d, "file"), "x");
    await expect(new StateStore(join(d, "file", "state"), logger).load()).rejects.toThrow(
      "cannot be created",
    );
  });
});

describe("StateStore: autosave", () => {
  test("values are written soon without flush(), coalesced, and read back by a new store", async () => {
    const d = await tempDir();
    const s = new StateStore(d, logger);
    await s.load();
    for (let i = 0; i <= 100; i++) s.saveAutosave("alpha", "SP", i);
    s.saveAutosave("alpha", "NAME", "hello");
    const f = join(d, "autosave", "alpha.json");
    const written = await until(async () => {
      try {
        return JSON.parse(await readFile(f, "utf8")).values.SP === 100;
      } catch {
        return false;
      }
    });
    expect(written).toBe(true);
    expect(await new StateStore(d, logger).loadAutosave("alpha")).toEqual({
      SP: 100,
      NAME: "hello",
    });
  });

  test("loadAutosave includes unwritten changes; flush() writes them; later saves merge", async () => {
    const d = await tempDir();
    const s = new StateStore(d, logger);
    await s.load();
    s.saveAutosave("p", "A", 1);
    expect(await s.loadAutosave("p")).toEqual({ A: 1 });
    await s.flush();
    s.saveAutosave("p", "B", 2);
    await s.flush();
    expect(await new StateStore(d, logger).loadAutosave("p")).toEqual({ A: 1, B: 2 });
  });

  test("arrays, typed arrays and non-finite numbers survive as JSON", async () => {
    const d = await tempDir();
    const s = new StateStore(d, logger);
    await s.load();
    s.saveAutosave("p", "WAVE", Float64Array.from([1.5, Number.NaN, Number.POSITIVE_INFINITY]));
    s.saveAutosave("p", "IDS", Int32Array.from([1, -2]));
    s.saveAutosave("p", "X", Number.NEGATIVE_INFINITY);
    s.saveAutosave("p", "LIST", [1, 2]);
    await s.flush();
    expect(await new StateStore(d, logger).loadAutosave("p")).toEqual({
      WAVE: [1.5, "NaN", "Infinity"],
      IDS: [1, -2],
      X: "-Infinity",
      LIST: [1, 2],
    });
  });

  test("huge arrays are not autosaved (the previous value stays)", async () => {
    const d = await tempDir();
    const s = new StateStore(d, logger);
    await s.load();
    s.saveAutosave("p", "W", [1, 2]);
    s.saveAutosave("p", "W", new Float64Array(2_000_000));
    await s.flush();
    expect(await new StateStore(d, logger).loadAutosave("p")).toEqual({ W: [1, 2] });
  });

  test("dropAutosave forgets pending and written values", async () => {
    const d = await tempDir();
    const s = new StateStore(d, logger);
    await s.load();
    s.saveAutosave("p", "A", 1);
    await s.flush();
    s.saveAutosave("p", "B", 2);
    await s.dropAutosave("p");
    await s.flush();
    expect(await exists(join(d, "autosave", "p.json"))).toBe(false);
    expect(await s.loadAutosave("p")).toEqual({});
    await s.dropAutosave("never-saved");
  });

  test("a corrupt autosave file is moved aside and gives no values", async () => {
    const d = await tempDir();
    await mkdir(join(d, "autosave"), { recursive: true });
    await writeFile(join(d, "autosave", "p.json"), "{not json");
    const s = new StateStore(d, logger);
    await s.load();
    expect(await s.loadAutosave("p")).toEqual({});
    const names = await readdir(join(d, "autosave"));
    expect(names.some((n) => n.startsWith("p.json.corrupt-"))).toBe(true);
    s.saveAutosave("p", "A", 3);
    await s.flush();
    expect(await new StateStore(d, logger).loadAutosave("p")).toEqual({ A: 3 });
  });

  test("plugin names that could escape the directory are refused", async () => {
    const d = await tempDir();
    const s = new StateStore(d, logger);
    await s.load();
    expect(() => s.saveAutosave("../../etc/x", "A", 1)).toThrow("invalid plugin name");
    await expect(s.loadAutosave("a/b")).rejects.toThrow("invalid plugin name");
    await expect(s.dropAutosave("..")).rejects.toThrow("invalid plugin name");
  });

  test("a failing write is reported by flush() and retried with the next one", async () => {
    const d = await tempDir();
    const s = new StateStore(d, logger);
    await s.load();
    // Make the autosave directory unusable: a file in its place.
    await rm(join(d, "autosave"), { recursive: true });
    await writeFile(join(d, "autosave"), "not a dir");
    s.saveAutosave("p", "A", 1);
    await expect(s.flush()).rejects.toThrow();
    await rm(join(d, "autosave"));
    await mkdir(join(d, "autosave"));
    await s.flush();
    expect(await new StateStore(d, logger).loadAutosave("p")).toEqual({ A: 1 });
  });
});

describe("crash safety", () => {
  const writer = join(import.meta.dir, "crash-writer.ts");

  /** Runs the writer until it reports `minWrites` completed writes, then SIGKILLs it. */
  async function runAndKill(
    dir: string,
    mode: "raw" | "store",
    minWrites: number,
  ): Promise<number> {
    const child = Bun.spawn([process.execPath, writer, dir, mode], {
      stdout: "pipe",
      stderr: "inherit",
    });
    let last = 0;
    let buf = "";
    const reader = child.stdout.getReader();
    const deadline = Date.now() + 60_000;
    while (last < minWrites && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += new TextDecoder().decode(value);
      const lines = buf.split("\n");
      buf = lines.pop() ?? "";
      for (const l of lines) if (l !== "") last = Number(l);
    }
    child.kill("SIGKILL");
    await child.exited;
    reader.releaseLock();
    expect(child.signalCode).toBe("SIGKILL");
    return last;
  }

  test("SIGKILL during a write loop leaves a complete file (raw atomicWriteFile)", async () => {
    for (const minWrites of [5, 23, 61]) {
      const d = await tempDir();
      const completed = await runAndKill(d, "raw", minWrites);
      expect(completed).toBeGreaterThanOrEqual(minWrites);
      const doc = JSON.parse(await readFile(join(d, "raw.json"), "utf8"));
      expect(doc.n).toBeGreaterThanOrEqual(completed);
      expect(doc.pad.length).toBe(padFor(doc.n));
    }
  }, 120_000);

  test("SIGKILL during registry and autosave writes: the next boot loads cleanly", async () => {
    for (const minWrites of [3, 17, 40]) {
      const d = await tempDir();
      const completed = await runAndKill(d, "store", minWrites);
      const s = new StateStore(d, logger);
      const r = await s.load();
      expect(r.warnings).toEqual([]);
      expect(r.plugins.length).toBe(1);
      const p = r.plugins[0]!;
      const n = p.parameters.n as number;
      expect(n).toBeGreaterThanOrEqual(completed);
      expect((p.parameters.pad as string).length).toBe(padFor(n) % 20_000);
      const sp = (await s.loadAutosave("p")).SP as number;
      expect(sp).toBeGreaterThanOrEqual(completed);
      expect((await readdir(d)).filter((x) => x.includes(".tmp-"))).toEqual([]);
    }
  }, 120_000);
});

describe("StateStore: use before load()", () => {
  test("autosave works on a fresh directory even before load()", async () => {
    const d = join(await tempDir(), "fresh");
    const s = new StateStore(d, logger);
    s.saveAutosave("p", "A", 7);
    await s.flush();
    expect(await new StateStore(d, logger).loadAutosave("p")).toEqual({ A: 7 });
  });
});
