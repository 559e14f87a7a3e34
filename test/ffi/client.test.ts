/**
 * The libca client against our native CA server on loopback (random port). libca reads its
 * EPICS_CA_* configuration when the context is created, so the environment is set before the
 * first caClient() call; the client is closed (and its context destroyed) after the file.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  CaBadTypeError,
  CaDisconnectedError,
  CaError,
  CaLibraryError,
  CaNoAccessError,
  CaTimeoutError,
  caClient,
  DBE,
  type LibcaClient,
} from "../../ffi/index.ts";
import type { Pv } from "../../src/pv/index.ts";
import type { PluginCaClient } from "../../src/sdk/host.ts";
import { type CaHarness, startCaServer } from "../helpers/ca-harness.ts";

/** Environment this file changed, restored afterwards so later test files start clean. */
const savedEnv: Record<string, string | undefined> = {};
function restoreEnv(): void {
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

let h: CaHarness;
let ca: LibcaClient;

/** Resolves when `pred` holds, polling; rejects after a generous bound (no timing assertion). */
async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

beforeAll(async () => {
  h = await startCaServer();
  for (const k of Object.keys(h.env)) savedEnv[k] = process.env[k];
  Object.assign(process.env, h.env);
  const r = h.registry;
  r.add({
    name: "FFI:DBL",
    kind: "double",
    writable: true,
    initial: 1.25,
    meta: {
      units: "mm",
      precision: 3,
      displayLow: -10,
      displayHigh: 10,
      controlLow: -5,
      controlHigh: 5,
      alarm: { lolo: -4, low: -3, high: 3, hihi: 4 },
    },
  });
  r.add({
    name: "FFI:LONG",
    kind: "long",
    writable: true,
    initial: -42,
    meta: { units: "cnt", displayLow: -100, displayHigh: 100 },
  });
  r.add({ name: "FFI:STR", kind: "string", writable: true, initial: "hello world" });
  r.add({
    name: "FFI:ENUM",
    kind: "enum",
    writable: true,
    initial: 1,
    meta: { states: ["Closed", "Open", "Moving"] },
  });
  r.add({ name: "FFI:CHAR", kind: "char", count: 64, writable: true, initial: "a long string" });
  r.add({
    name: "FFI:WAVE",
    kind: "double",
    count: 100,
    writable: true,
    initial: new Float64Array([1.5, 2.5, 3.5]),
  });
  r.add({
    name: "FFI:LWAVE",
    kind: "long",
    count: 8,
    writable: true,
    initial: new Int32Array([1, 2, 3, 4]),
  });
  r.add({ name: "FFI:RO", kind: "double", writable: false, initial: 7 });
  r.add({ name: "FFI:MON", kind: "double", writable: true, initial: 0 });
  ca = caClient();
});

afterAll(async () => {
  ca?.close();
  await ca?.whenClosed();
  await h?.stop();
  restoreEnv();
});

describe("get: every form of every kind", () => {
  test("double: value, time, ctrl", async () => {
    const v = await ca.get("FFI:DBL", { as: "value" });
    expect(v).toMatchObject({ value: 1.25, count: 1, nativeType: "double" });
    expect(v.status).toBeUndefined();
    const t = await ca.get("FFI:DBL", { as: "time" });
    expect(t).toMatchObject({ value: 1.25, status: 0, severity: 0 });
    const pv = h.registry.get("FFI:DBL") as Pv;
    expect(t.stamp).toEqual(pv.timestamp);
    const c = await ca.get("FFI:DBL", { as: "ctrl" });
    expect(c).toMatchObject({
      value: 1.25,
      units: "mm",
      precision: 3,
      displayLimits: { low: -10, high: 10 },
      controlLimits: { low: -5, high: 5 },
      alarmLimits: { lolo: -4, low: -3, high: 3, hihi: 4 },
    });
  });

  test("long: value, time, ctrl", async () => {
    expect((await ca.get("FFI:LONG", { as: "value" })).value).toBe(-42);
    expect(await ca.get("FFI:LONG")).toMatchObject({ value: -42, nativeType: "long", severity: 0 });
    const c = await ca.get("FFI:LONG", { as: "ctrl" });
    expect(c).toMatchObject({ units: "cnt", displayLimits: { low: -100, high: 100 } });
  });

  test("string: value, time, ctrl", async () => {
    for (const as of ["value", "time", "ctrl"] as const) {
      const r = await ca.get("FFI:STR", { as });
      expect(r).toMatchObject({ value: "hello world", nativeType: "string" });
    }
  });

  test("enum: index, and its state strings with ctrl", async () => {
    expect((await ca.get("FFI:ENUM", { as: "value" })).value).toBe(1);
    expect((await ca.get("FFI:ENUM")).value).toBe(1);
    const c = await ca.get("FFI:ENUM", { as: "ctrl" });
    expect(c).toMatchObject({ value: 1, enumStrings: ["Closed", "Open", "Moving"] });
  });

  test("char array comes back as Uint8Array", async () => {
    for (const as of ["value", "time", "ctrl"] as const) {
      const r = await ca.get("FFI:CHAR", { as });
      expect(r.value).toBeInstanceOf(Uint8Array);
      const s = new TextDecoder().decode(r.value as Uint8Array).replace(/\0.*$/s, "");
      expect(s).toBe("a long string");
    }
  });

  test("double and long arrays come back as typed arrays of the current length", async () => {
    for (const as of ["value", "time", "ctrl"] as const) {
      const r = await ca.get("FFI:WAVE", { as });
      expect(r.value).toEqual(new Float64Array([1.5, 2.5, 3.5]));
      expect(r.count).toBe(3);
    }
    expect((await ca.get("FFI:LWAVE")).value).toEqual(new Int32Array([1, 2, 3, 4]));
    // An explicit count asks for that many elements.
    expect((await ca.get("FFI:LWAVE", { count: 2 })).value).toEqual(new Int32Array([1, 2]));
  });

  test("large arrays (200,000 doubles = 1.6 MB) round-trip", async () => {
    const big = new Float64Array(200_000).map((_, i) => i * 0.5);
    h.registry.add({
      name: "FFI:BIG",
      kind: "double",
      count: 200_000,
      writable: true,
      initial: big,
    });
    const r = await ca.get("FFI:BIG", { timeout: 30 });
    expect(r.count).toBe(200_000);
    expect(r.value).toEqual(big);
    const half = new Float64Array(100_000).map((_, i) => -i);
    await ca.put("FFI:BIG", half, { wait: true, timeout: 30 });
    expect((h.registry.get("FFI:BIG") as Pv).length).toBe(100_000);
    expect((await ca.get("FFI:BIG", { timeout: 30 })).value).toEqual(half);
  });

  test("alarm state follows the server", async () => {
    const pv = h.registry.get("FFI:DBL") as Pv;
    pv.post(3.5);
    expect(await ca.get("FFI:DBL")).toMatchObject({ value: 3.5, severity: 1, status: 4 });
    pv.post(1.25);
  });
});

describe("put", () => {
  test("with completion, then read back", async () => {
    await ca.put("FFI:DBL", 2.5, { wait: true });
    expect((await ca.get("FFI:DBL")).value).toBe(2.5);
    await ca.put("FFI:LONG", "17", { wait: true });
    expect(h.registry.get("FFI:LONG")?.value).toBe(17);
  });

  test("without completion reaches the server", async () => {
    await ca.put("FFI:DBL", -1.5);
    await until(() => h.registry.get("FFI:DBL")?.value === -1.5, "put without wait");
  });

  test("string, enum by index and by name, char array from a string, arrays", async () => {
    await ca.put("FFI:STR", "changed", { wait: true });
    expect(h.registry.get("FFI:STR")?.value).toBe("changed");
    await ca.put("FFI:ENUM", 2, { wait: true });
    expect(h.registry.get("FFI:ENUM")?.value).toBe(2);
    await ca.put("FFI:ENUM", "Closed", { wait: true });
    expect(h.registry.get("FFI:ENUM")?.value).toBe(0);
    await ca.put("FFI:CHAR", "über", { wait: true });
    const bytes = h.registry.get("FFI:CHAR")?.value as Uint8Array;
    expect(new TextDecoder().decode(bytes).replace(/\0.*$/s, "")).toBe("über");
    await ca.put("FFI:WAVE", [9, 8, 7, 6], { wait: true });
    expect((await ca.get("FFI:WAVE")).value).toEqual(new Float64Array([9, 8, 7, 6]));
    await ca.put("FFI:LWAVE", new Int32Array([5, 6]), { wait: true });
    expect((await ca.get("FFI:LWAVE")).value).toEqual(new Int32Array([5, 6]));
  });

  test("a write refused by the server rejects with its ECA code", async () => {
    const err = await ca.put("FFI:DBL", 99, { wait: true }).catch((e) => e);
    expect(err).toBeInstanceOf(CaError);
    expect((err as CaError).eca).not.toBe(1);
    expect(h.registry.get("FFI:DBL")?.value).not.toBe(99);
  });

  test("read-only PV: CaNoAccessError, value unchanged", async () => {
    const err = await ca.put("FFI:RO", 1, { wait: true }).catch((e) => e);
    expect(err).toBeInstanceOf(CaNoAccessError);
    const err2 = await ca.put("FFI:RO", 1).catch((e) => e);
    expect(err2).toBeInstanceOf(CaNoAccessError);
    expect(h.registry.get("FFI:RO")?.value).toBe(7);
  });

  test("bad values are refused before sending", async () => {
    await expect(ca.put("FFI:DBL", { x: 1 })).rejects.toBeInstanceOf(CaBadTypeError);
    await expect(ca.put("FFI:DBL", "not a number")).rejects.toBeInstanceOf(CaBadTypeError);
    await expect(ca.put("FFI:WAVE", new Float64Array(101))).rejects.toThrow(/at most 100/);
    await expect(ca.put("FFI:ENUM", -1)).rejects.toBeInstanceOf(CaBadTypeError);
  });

  test("completion that never comes times out", async () => {
    let release: () => void = () => {};
    h.registry.add(
      { name: "FFI:SLOW", kind: "double", writable: true },
      () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
    );
    const err = await ca.put("FFI:SLOW", 1, { wait: true, timeout: 0.3 }).catch((e) => e);
    expect(err).toBeInstanceOf(CaTimeoutError);
    expect((err as Error).message).toMatch(/no reply/);
    release();
  });
});

describe("errors and hostile input", () => {
  test("a PV removed while a put waits for completion: CaDisconnectedError", async () => {
    h.registry.add(
      { name: "FFI:VANISH", kind: "double", writable: true },
      () => new Promise<void>(() => {}),
    );
    const pending = ca.put("FFI:VANISH", 1, { wait: true, timeout: 60 }).catch((e) => e);
    await until(
      () => h.registry.get("FFI:VANISH") !== undefined && ca.nativeType("FFI:VANISH") !== undefined,
      "connect",
    );
    // Give the write time to reach the server's handler, bounded by the server-side check.
    await Bun.sleep(50);
    h.registry.remove("FFI:VANISH");
    const err = await pending;
    expect(err).toBeInstanceOf(CaDisconnectedError);
  });

  test("a throwing onUpdate does not stop other monitors", async () => {
    const pv = h.registry.get("FFI:MON") as Pv;
    let good = 0;
    const bad = ca.monitor("FFI:MON", {
      onUpdate: () => {
        throw new Error("consumer bug");
      },
    });
    const ok = ca.monitor("FFI:MON", { onUpdate: () => good++ });
    await until(() => good >= 1, "initial update");
    pv.post(4242);
    await until(() => good >= 2, "update after a throwing consumer");
    bad.close();
    ok.close();
  });

  test("unknown PV: CaTimeoutError naming the PV", async () => {
    const err = await ca.get("FFI:DOES_NOT_EXIST", { timeout: 0.3 }).catch((e) => e);
    expect(err).toBeInstanceOf(CaTimeoutError);
    expect((err as Error).message).toContain("FFI:DOES_NOT_EXIST");
    expect((err as CaTimeoutError).eca).toBe(80);
  });

  test("a PV that never connected is forgotten after its timeout (no endless searches)", async () => {
    const before = ca.channelCount;
    const errs = await Promise.all(
      ["FFI:TYPO1", "FFI:TYPO2", "FFI:TYPO3"].map((n) =>
        ca.get(n, { timeout: 0.2 }).catch((e) => e),
      ),
    );
    for (const e of errs) expect(e).toBeInstanceOf(CaTimeoutError);
    expect(ca.channelCount).toBe(before);
    // A watched absent PV is kept: its listener wants to hear when it appears.
    const off = ca.onConnection("FFI:LATER", () => {});
    await ca.get("FFI:LATER", { timeout: 0.2 }).catch(() => {});
    expect(ca.channelCount).toBe(before + 1);
    off();
  });

  test("invalid names and options are refused", async () => {
    await expect(ca.get("")).rejects.toThrow(/invalid PV name/);
    await expect(ca.get("has space")).rejects.toThrow(/invalid PV name/);
    await expect(ca.get("X".repeat(5000))).rejects.toThrow(/too long/);
    await expect(ca.get(42 as unknown as string)).rejects.toThrow(/invalid PV name/);
    await expect(ca.get("FFI:DBL", { timeout: -1 })).rejects.toThrow(/timeout/);
    await expect(ca.get("FFI:DBL", { timeout: Number.NaN })).rejects.toThrow(/timeout/);
    await expect(ca.get("FFI:DBL", { as: "bogus" as "value" })).rejects.toThrow(/"as"/);
    await expect(ca.get("FFI:DBL", { count: -3 })).rejects.toThrow(/count/);
    expect(() => ca.monitor("FFI:DBL", { mask: 0 })).toThrow(/mask/);
    expect(() => ca.monitor("FFI:DBL", { mask: 99 })).toThrow(/mask/);
    // The client still works afterwards.
    expect((await ca.get("FFI:STR")).nativeType).toBe("string");
  });
});

describe("monitors", () => {
  test("async iterator receives the initial value and each post, in order", async () => {
    const pv = h.registry.get("FFI:MON") as Pv;
    pv.post(0);
    const m = ca.monitor("FFI:MON");
    const got: number[] = [];
    let posted = false;
    for await (const r of m) {
      got.push(r.value as number);
      if (!posted) {
        posted = true;
        for (let i = 1; i <= 20; i++) pv.post(i);
      }
      if (r.value === 20) break;
    }
    expect(got[0]).toBe(0);
    expect(got).toEqual([...got].sort((a, b) => a - b));
    expect(got.at(-1)).toBe(20);
    expect(m.dropped).toBe(0);
  });

  test("onUpdate with ctrl form and DBE_PROPERTY sees metadata changes", async () => {
    const pv = h.registry.get("FFI:MON") as Pv;
    const seen: Array<string | undefined> = [];
    const precisions: Array<number | undefined> = [];
    // Through the type plugins see as this.ca, so `as` and the ctrl metadata are part of it.
    const pluginCa: PluginCaClient = ca;
    const m = pluginCa.monitor("FFI:MON", {
      as: "ctrl",
      mask: DBE.VALUE | DBE.PROPERTY,
      onUpdate: (r) => {
        seen.push(r.units);
        precisions.push(r.precision);
      },
    });
    await until(() => seen.length >= 1, "first ctrl update");
    pv.setMeta({ units: "V", precision: 4 });
    await until(() => seen.includes("V"), "property update");
    expect(precisions.at(-1)).toBe(4);
    m.close();
  });

  test("close() stops delivery", async () => {
    const pv = h.registry.get("FFI:MON") as Pv;
    let n = 0;
    const m = ca.monitor("FFI:MON", { onUpdate: () => n++ });
    await until(() => n >= 1, "initial update");
    m.close();
    const after = n;
    for (let i = 0; i < 5; i++) pv.post(100 + i);
    // A get round-trip after the posts proves they were sent before we look.
    await ca.get("FFI:MON");
    expect(n).toBe(after);
  });

  test("arrays arrive as typed arrays", async () => {
    const pv = h.registry.get("FFI:WAVE") as Pv;
    const m = ca.monitor("FFI:WAVE", { as: "value" });
    const it = m[Symbol.asyncIterator]();
    await it.next();
    pv.post(new Float64Array([4, 5]));
    const r = (await it.next()).value;
    expect(r?.value).toEqual(new Float64Array([4, 5]));
    m.close();
    expect((await it.next()).done).toBe(true);
  });
});

describe("disconnect and reconnect", () => {
  test("removing a PV disconnects; re-adding reconnects and the monitor resumes", async () => {
    h.registry.add({ name: "FFI:CYCLE", kind: "long", writable: true, initial: 1 });
    const states: boolean[] = [];
    const off = ca.onConnection("FFI:CYCLE", (c) => states.push(c));
    const values: number[] = [];
    const m = ca.monitor("FFI:CYCLE", { onUpdate: (r) => values.push(r.value as number) });
    await until(() => states.at(-1) === true && values.includes(1), "first connection");
    h.registry.remove("FFI:CYCLE");
    await until(() => states.at(-1) === false, "disconnect");
    const err = await ca.get("FFI:CYCLE", { timeout: 0.3 }).catch((e) => e);
    expect(err).toBeInstanceOf(CaTimeoutError);
    h.registry.add({ name: "FFI:CYCLE", kind: "long", writable: true, initial: 2 });
    await until(() => states.at(-1) === true, "reconnect", 30_000);
    await until(() => values.includes(2), "monitor after reconnect", 30_000);
    expect((await ca.get("FFI:CYCLE")).value).toBe(2);
    expect(states).toEqual([true, false, true]);
    off();
    m.close();
  }, 60_000);
});

describe("threads", () => {
  test("a Worker terminated with a monitor open does not crash the process", async () => {
    const pv = h.registry.get("FFI:MON") as Pv;
    const w = new Worker(new URL("./fixtures/monitor-worker.ts", import.meta.url).href);
    const updates: unknown[] = [];
    let ready = false;
    w.onmessage = (ev: MessageEvent) => {
      const d = ev.data as { event: string; value: unknown };
      if (d.event === "ready") ready = true;
      if (d.event === "update") updates.push(d.value);
    };
    w.postMessage({ cmd: "start", env: h.env, pv: "FFI:MON" });
    await until(() => ready && updates.length > 0, "worker monitor");
    w.terminate();
    // Keep the server pushing updates to the dead worker's circuit, and keep using our client.
    for (let i = 0; i < 50; i++) {
      pv.post(1000 + i);
      await Bun.sleep(2);
    }
    expect((await ca.get("FFI:MON")).value).toBe(1049);
  });

  test("a Worker can close its client cleanly", async () => {
    const w = new Worker(new URL("./fixtures/monitor-worker.ts", import.meta.url).href);
    const events: string[] = [];
    w.onmessage = (ev: MessageEvent) => events.push((ev.data as { event: string }).event);
    w.postMessage({ cmd: "start", env: h.env, pv: "FFI:MON" });
    await until(() => events.includes("ready"), "worker ready");
    w.postMessage({ cmd: "close" });
    await until(() => events.includes("closed"), "worker closed");
    w.terminate();
  });
});

describe("process lifetime", () => {
  test("an idle client that was never closed does not keep the process alive", async () => {
    const code = `
      process.env.EPICS_CA_ADDR_LIST = "127.0.0.1";
      process.env.EPICS_CA_AUTO_ADDR_LIST = "NO";
      process.env.EPICS_CA_SERVER_PORT = "45999";
      const m = await import(${JSON.stringify(new URL("../../ffi/index.ts", import.meta.url).pathname)});
      const err = await m.caClient().get("NOBODY:HOME", { timeout: 0.2 }).catch((e) => e);
      console.log(err.name);`;
    const p = Bun.spawn([process.execPath, "-e", code], { stdout: "pipe", stderr: "pipe" });
    const killer = setTimeout(() => p.kill(), 30_000);
    const out = await new Response(p.stdout).text();
    const code_ = await p.exited;
    clearTimeout(killer);
    expect(out.trim()).toBe("CaTimeoutError");
    expect(code_).toBe(0);
  }, 60_000);
});

describe("library loading", () => {
  test("a missing libca gives CaLibraryError naming the Debian package", async () => {
    const code = `
      const m = await import(${JSON.stringify(new URL("../../ffi/index.ts", import.meta.url).pathname)});
      try { m.caClient(); console.log("LOADED"); }
      catch (e) { console.log(e.name + "|" + (e instanceof m.CaLibraryError) + "|" + e.message); }`;
    const p = Bun.spawn([process.execPath, "-e", code], {
      env: { ...process.env, IOCMNG_LIBCA: "/nonexistent/libca.so.9" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const out = await new Response(p.stdout).text();
    await p.exited;
    expect(out).toContain("CaLibraryError|true|");
    expect(out).toContain("libca4.13.5");
    expect(out).toContain("/nonexistent/libca.so.9");
    expect(CaLibraryError.name).toBe("CaLibraryError");
  });
});
