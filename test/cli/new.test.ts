import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSdk } from "../../packages/sdk/build.ts";

const ROOT = join(import.meta.dir, "..", "..");
let work: string;
let sdkPackage: string;

function run(cmd: string[], cwd: string) {
  const p = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe", env: { ...process.env } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

function iocmng(args: string[], cwd = work) {
  return run([process.execPath, join(ROOT, "src/main.ts"), ...args], cwd);
}

/** What `bun install` would give the author: the published SDK and Bun's types. */
function linkDependencies(dir: string): void {
  mkdirSync(join(dir, "node_modules", "@types"), { recursive: true });
  symlinkSync(sdkPackage, join(dir, "node_modules", "iocmng"));
  symlinkSync(join(ROOT, "node_modules/@types/bun"), join(dir, "node_modules/@types/bun"));
  symlinkSync(join(ROOT, "node_modules/bun-types"), join(dir, "node_modules/bun-types"));
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "iocmng-new-"));
  // The SDK exactly as it would be published: packages/sdk/package.json + the built dist/.
  sdkPackage = join(work, "sdk-package");
  mkdirSync(sdkPackage);
  copyFileSync(join(ROOT, "packages/sdk/package.json"), join(sdkPackage, "package.json"));
  await buildSdk(join(sdkPackage, "dist"));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("iocmng new", () => {
  const variants: Array<[string, string[]]> = [
    ["continuous task", ["task", "ramp-one"]],
    ["triggered task", ["task", "trig_two", "--mode", "triggered"]],
    ["job", ["job", "sum3"]],
  ];
  for (const [what, args] of variants) {
    test(`${what}: files written, its unit test passes and type-checks against the published SDK`, () => {
      const name = args[1]!;
      const r = iocmng(["new", ...args, "--dir", "plugins"]);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      const dir = join(work, "plugins", name);
      for (const f of [
        `${name}.ts`,
        `${name}.test.ts`,
        "config.yaml",
        "package.json",
        "README.md",
      ]) {
        expect(existsSync(join(dir, f))).toBe(true);
      }
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      expect(pkg.devDependencies.iocmng).toBeString();
      expect(pkg.dependencies).toBeUndefined();
      expect(pkg.module).toBe(`${name}.ts`);
      if (args.includes("triggered")) {
        expect(readFileSync(join(dir, "config.yaml"), "utf8")).toContain("mode: triggered");
      }
      linkDependencies(dir);
      const t = run([process.execPath, "test"], dir);
      expect(`${t.out}${t.err}`).toContain(" 2 pass");
      expect(t.code).toBe(0);
      const tsc = run(
        [process.execPath, join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "."],
        dir,
      );
      expect(tsc.out).toBe("");
      expect(tsc.code).toBe(0);
    });
  }

  test("the scaffold's unit test fails when the plugin is broken", () => {
    expect(iocmng(["new", "task", "broken", "--dir", "plugins"]).code).toBe(0);
    const dir = join(work, "plugins", "broken");
    const src = join(dir, "broken.ts");
    writeFileSync(src, readFileSync(src, "utf8").replace("Math.sign(delta) * step", "0"));
    linkDependencies(dir);
    const t = run([process.execPath, "test"], dir);
    expect(t.code).not.toBe(0);
  });

  test("refuses a non-empty target directory and changes nothing in it", () => {
    const dir = join(work, "plugins", "taken");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "mine.txt"), "keep me");
    const r = iocmng(["new", "task", "taken", "--dir", "plugins"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^iocmng new: .*taken already exists and is not empty\n$/);
    expect(readFileSync(join(dir, "mine.txt"), "utf8")).toBe("keep me");
    expect(existsSync(join(dir, "config.yaml"))).toBe(false);
  });

  test("refuses a target that is a file", () => {
    writeFileSync(join(work, "afile"), "x");
    const r = iocmng(["new", "job", "afile"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("exists and is not a directory");
    expect(readFileSync(join(work, "afile"), "utf8")).toBe("x");
  });

  test("an empty existing directory is fine", () => {
    mkdirSync(join(work, "empty-one"));
    expect(iocmng(["new", "job", "empty-one"]).code).toBe(0);
    expect(existsSync(join(work, "empty-one", "empty-one.ts"))).toBe(true);
  });
});
