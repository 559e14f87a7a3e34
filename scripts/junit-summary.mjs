#!/usr/bin/env node
// Prints `tests: N passed, N failed` from a JUnit XML report (bun test --reporter=junit).
// Counts each <testcase>: failed when it holds <failure> or <error>, skipped when <skipped>.
// When the report is missing (type check or lint failed before tests ran) it reports what it knows:
// zero passed and, if the run failed, one failure, so CI never sees a green-looking line.
import { existsSync, readFileSync } from "node:fs";

const [file, statusArg] = process.argv.slice(2);
const status = Number(statusArg ?? "0");
let passed = 0;
let failed = 0;
let skipped = 0;
if (file && existsSync(file)) {
  const xml = readFileSync(file, "utf8");
  const re = /<testcase\b[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const m of xml.matchAll(re)) {
    const body = m[2] ?? "";
    if (/<(failure|error)\b/.test(body)) failed++;
    else if (/<skipped\b/.test(body)) skipped++;
    else passed++;
  }
}
if (status !== 0 && failed === 0) failed = 1;
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
