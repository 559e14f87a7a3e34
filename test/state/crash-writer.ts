/**
 * Child process for the crash test: writes state in a tight loop and prints the sequence number
 * of every write that completed. The test kills it with SIGKILL at a random point.
 * argv: <state dir> <mode: store|raw>
 */
import pino from "pino";
import { atomicWriteFile } from "../../src/state/atomic.ts";
import { StateStore } from "../../src/state/store.ts";

/** Padding length for write number n: varies so a torn file cannot look complete. */
export function padFor(n: number): number {
  return (n * 7919) % 200_000;
}

if (import.meta.main) {
  const [dir, mode] = process.argv.slice(2);
  if (dir === undefined) throw new Error("usage: crash-writer.ts <dir> <store|raw>");

  if (mode === "raw") {
    for (let n = 1; ; n++) {
      const doc = JSON.stringify({ n, pad: "x".repeat(padFor(n)) });
      await atomicWriteFile(`${dir}/raw.json`, doc);
      process.stdout.write(`${n}\n`);
    }
  } else {
    const store = new StateStore(dir, pino({ level: "silent" }));
    await store.load();
    for (let n = 1; ; n++) {
      await store.putPlugin({
        name: "p",
        kind: "task",
        git_url: "file:///r",
        parameters: { n, pad: "y".repeat(padFor(n) % 20_000) },
        auto_start: true,
        cloneDir: "/c",
        addedAt: new Date().toISOString(),
      });
      store.saveAutosave("p", "SP", n);
      await store.flush();
      process.stdout.write(`${n}\n`);
    }
  }
}
