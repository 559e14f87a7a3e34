/**
 * The import rules of docs/architecture.md, checked on every file under src/ and ffi/: each import
 * specifier (static, type-only, re-export, dynamic import(), require()) is resolved and tested
 * against the rules of the importing file's area. A broken rule fails with the file, the import
 * and the rule's reason.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { Glob } from "bun";

const ROOT = resolve(import.meta.dir, "..");

interface Import {
  /** The importing file, relative to the repository root. */
  file: string;
  /** The specifier as written. */
  spec: string;
  /** Repository-relative target for relative specifiers; null for packages and builtins. */
  target: string | null;
}

// Comments are removed first so an example in a doc comment is not taken for an import.
function stripComments(code: string): string {
  return code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
}

const IMPORT_RES = [
  /\bimport\s+(?:type\s+)?[\w*\s{},$]*?\s*from\s*["']([^"']+)["']/g,
  /\bexport\s+(?:type\s+)?[\w*\s{},$]*?\s*from\s*["']([^"']+)["']/g,
  /\bimport\s*["']([^"']+)["']/g,
  /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  /\brequire\s*\(\s*["']([^"']+)["']\s*\)/g,
];

function importsOf(file: string): Import[] {
  const code = stripComments(readFileSync(join(ROOT, file), "utf8"));
  const out: Import[] = [];
  for (const re of IMPORT_RES) {
    for (const m of code.matchAll(re)) {
      const spec = m[1] as string;
      const target = spec.startsWith(".")
        ? relative(ROOT, resolve(ROOT, dirname(file), spec))
        : null;
      out.push({ file, spec, target });
    }
  }
  return out;
}

function sourceFiles(): string[] {
  const files: string[] = [];
  for (const dir of ["src", "ffi"]) {
    for (const f of new Glob(`${dir}/**/*.ts`).scanSync(ROOT)) files.push(f);
  }
  return files.sort();
}

const isBuiltin = (spec: string) =>
  spec.startsWith("node:") || spec === "bun" || spec.startsWith("bun:");
const under = (path: string | null, dir: string) =>
  path !== null && (path === dir || path.startsWith(`${dir}/`));

/** One rule: which files it governs and what an import of theirs must not be. */
interface Rule {
  name: string;
  why: string;
  applies: (file: string) => boolean;
  /** Returns true when the import breaks the rule. */
  breaks: (imp: Import) => boolean;
}

const RULES: Rule[] = [
  {
    name: "codec is sans-I/O",
    why: "src/ca/codec turns bytes into messages and back; sockets, files and threads belong to src/ca/server",
    applies: (f) => under(f, "src/ca/codec"),
    breaks: (i) =>
      isBuiltin(i.spec) ||
      (i.target !== null && !under(i.target, "src/ca/codec") && i.target !== "src/pv/types.ts"),
  },
  {
    name: "pvAccess codec is sans-I/O",
    why: "src/pva/codec turns bytes into messages and back; sockets, files and threads belong to src/pva/server",
    applies: (f) => under(f, "src/pva/codec"),
    breaks: (i) => isBuiltin(i.spec) || (i.target !== null && !under(i.target, "src/pva/codec")),
  },
  {
    name: "the DBR layout module is a leaf",
    why: "src/ca/codec/dbr-layout.ts is shared with ffi/; it must not drag anything along",
    applies: (f) => f === "src/ca/codec/dbr-layout.ts",
    breaks: () => true,
  },
  {
    name: "pv/ knows no protocol",
    why: "the PV model is shared by every protocol server; it must not depend on one of them",
    applies: (f) => under(f, "src/pv"),
    breaks: (i) =>
      i.target !== null && !under(i.target, "src/pv") && !under(i.target, "src/common"),
  },
  {
    name: "protocol servers meet only through pv/",
    why: "CA and pvAccess serve the same PvSource; neither imports the other or the plugin runtime",
    applies: (f) => under(f, "src/ca") || under(f, "src/pva"),
    breaks: (i) => {
      if (i.target === null) return false;
      const own = under(i.file, "src/ca") ? "src/ca" : "src/pva";
      return !under(i.target, own) && !under(i.target, "src/pv") && !under(i.target, "src/common");
    },
  },
  {
    name: "api/ reaches the runtime only through its port",
    why: "src/api declares the port it needs (ControllerPort); src/server.ts wires the runtime in",
    applies: (f) => under(f, "src/api"),
    breaks: (i) =>
      i.target !== null && !under(i.target, "src/api") && !under(i.target, "src/common"),
  },
  {
    name: "only ffi/ loads foreign libraries",
    why: "bun:ffi (dlopen, cc) is confined to ffi/, which checks every call and every library it loads",
    applies: (f) => !under(f, "ffi"),
    breaks: (i) => i.spec === "bun:ffi",
  },
  {
    name: "ffi/ takes from src/ only the DBR layouts",
    why: "the CA client must stay loadable in a plugin Worker without the server's code",
    applies: (f) => under(f, "ffi"),
    breaks: (i) =>
      i.target !== null && under(i.target, "src") && i.target !== "src/ca/codec/dbr-layout.ts",
  },
];

/** Every broken rule in the given files, as readable lines. */
function violations(files: string[]): string[] {
  const out: string[] = [];
  for (const file of files) {
    for (const imp of importsOf(file)) {
      for (const rule of RULES) {
        if (rule.applies(file) && rule.breaks(imp)) {
          out.push(`${file}: import "${imp.spec}" breaks "${rule.name}" (${rule.why})`);
        }
      }
    }
  }
  return out;
}

describe("architecture", () => {
  const files = sourceFiles();

  test("the scan sees the tree and its imports", () => {
    // Guards the test itself: a glob or a regex that finds nothing would pass every rule.
    expect(files.length).toBeGreaterThan(40);
    const found = importsOf("src/ca/server/circuit.ts").map((i) => i.target);
    expect(found).toContain("src/ca/codec/stream.ts");
    expect(importsOf("ffi/shim.ts").map((i) => i.spec)).toContain("bun:ffi");
  });

  test("no file breaks an import rule", () => {
    expect(violations(files)).toEqual([]);
  });

  test("only ffi/ calls dlopen", () => {
    const offenders = files.filter(
      (f) =>
        !under(f, "ffi") &&
        /\bdlopen\s*\(/.test(stripComments(readFileSync(join(ROOT, f), "utf8"))),
    );
    expect(offenders).toEqual([]);
  });
});
