import { afterEach, describe, expect, test } from "bun:test";
import pino from "pino";
import { installSignalHandlers } from "../../src/server.ts";

/**
 * The signal policy with the exit injected (the real process path is covered by lifecycle.test):
 * exit 0 after a clean stop, 1 when stop fails, hangs past the grace time, or on a second signal.
 */
const silent = pino({ level: "silent" });
let uninstall: (() => void) | null = null;

afterEach(() => {
  uninstall?.();
  uninstall = null;
});

function recorder() {
  const codes: number[] = [];
  let notify: () => void = () => {};
  const next = () =>
    new Promise<void>((ok) => {
      notify = ok;
    });
  return {
    codes,
    next,
    exit: (code: number) => {
      codes.push(code);
      notify();
    },
  };
}

describe("installSignalHandlers", () => {
  test("SIGTERM: stop() once, then exit 0", async () => {
    const r = recorder();
    let stops = 0;
    uninstall = installSignalHandlers(
      {
        stop: async () => {
          stops++;
        },
      },
      silent,
      { exit: r.exit },
    );
    const exited = r.next();
    process.emit("SIGTERM", "SIGTERM");
    await exited;
    expect(r.codes).toEqual([0]);
    expect(stops).toBe(1);
  });

  test("a stop that never ends: exit 1 after the grace time", async () => {
    const r = recorder();
    uninstall = installSignalHandlers({ stop: () => new Promise<void>(() => {}) }, silent, {
      exit: r.exit,
      graceMs: 100,
    });
    const exited = r.next();
    process.emit("SIGINT", "SIGINT");
    await exited;
    expect(r.codes).toEqual([1]);
  });

  test("a failing stop: exit 1", async () => {
    const r = recorder();
    uninstall = installSignalHandlers({ stop: () => Promise.reject(new Error("x")) }, silent, {
      exit: r.exit,
    });
    const exited = r.next();
    process.emit("SIGTERM", "SIGTERM");
    await exited;
    expect(r.codes).toEqual([1]);
  });

  test("a second signal during shutdown exits 1 at once", async () => {
    const r = recorder();
    uninstall = installSignalHandlers({ stop: () => new Promise<void>(() => {}) }, silent, {
      exit: r.exit,
      graceMs: 60_000,
    });
    process.emit("SIGTERM", "SIGTERM");
    const exited = r.next();
    process.emit("SIGINT", "SIGINT");
    await exited;
    expect(r.codes).toEqual([1]);
  });

  test("uninstall removes the handlers", () => {
    const before = process.listenerCount("SIGTERM");
    const off = installSignalHandlers({ stop: async () => {} }, silent, { exit: () => {} });
    expect(process.listenerCount("SIGTERM")).toBe(before + 1);
    off();
    expect(process.listenerCount("SIGTERM")).toBe(before);
  });
});
