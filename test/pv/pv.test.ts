import { describe, expect, test } from "bun:test";
import {
  AlarmStatus,
  DBE,
  PvRegistry,
  PvSpecError,
  PvWriteError,
  Severity,
} from "../../src/pv/index.ts";

function collect(reg: PvRegistry, name: string): number[] {
  const masks: number[] = [];
  reg.get(name)?.subscribe((m) => masks.push(m));
  return masks;
}

describe("Pv model", () => {
  test("MDEL and ADEL deadbands decide DBE_VALUE and DBE_LOG", () => {
    const reg = new PvRegistry();
    const pv = reg.add({ name: "T:X", kind: "double", initial: 0, meta: { mdel: 1, adel: 5 } });
    const masks = collect(reg, "T:X");
    pv.post(0.5); // inside both deadbands: nothing
    pv.post(1.5); // |1.5-0| > 1 → VALUE
    pv.post(6); // |6-1.5| > 1 → VALUE; |6-0| > 5 → LOG
    expect(masks).toEqual([DBE.VALUE, DBE.VALUE | DBE.LOG]);
  });

  test("alarm limits with hysteresis raise and clear severity and post DBE_ALARM", () => {
    const reg = new PvRegistry();
    const pv = reg.add({
      name: "T:A",
      kind: "double",
      meta: { alarm: { high: 10, hihi: 20, hyst: 2 } },
    });
    const masks = collect(reg, "T:A");
    pv.post(15);
    expect([pv.status, pv.severity]).toEqual([AlarmStatus.HIGH, Severity.MINOR]);
    pv.post(25);
    expect([pv.status, pv.severity]).toEqual([AlarmStatus.HIHI, Severity.MAJOR]);
    pv.post(19); // still within hysteresis of HIHI
    expect(pv.status).toBe(AlarmStatus.HIHI);
    pv.post(17); // out of HIHI hysteresis, still above HIGH
    expect(pv.status).toBe(AlarmStatus.HIGH);
    pv.post(5);
    expect(pv.severity).toBe(Severity.NO_ALARM);
    expect(masks.every((m) => (m & DBE.VALUE) !== 0)).toBe(true);
    expect(masks.filter((m) => (m & DBE.ALARM) !== 0).length).toBe(4);
  });

  test("enum state severities and state names", async () => {
    const reg = new PvRegistry();
    const pv = reg.add({
      name: "T:E",
      kind: "enum",
      writable: true,
      meta: { states: ["OK", "WARN", "BAD"], stateSeverity: [0, 1, 2] },
    });
    pv.post("BAD");
    expect(pv.value).toBe(2);
    expect([pv.status, pv.severity]).toEqual([AlarmStatus.STATE, Severity.MAJOR]);
    await expect(pv.write(3)).rejects.toThrow(/out of range/);
  });

  test("writes: read-only refused, drive limits enforced, handler may reject or replace", async () => {
    const reg = new PvRegistry();
    const ro = reg.add({ name: "T:RO", kind: "long" });
    await expect(ro.write(1)).rejects.toBeInstanceOf(PvWriteError);
    const seen: unknown[] = [];
    const sp = reg.add(
      { name: "T:SP", kind: "double", writable: true, meta: { controlLow: 0, controlHigh: 10 } },
      (v) => {
        seen.push(v);
        if (v === 7) throw new Error("seven is unlucky");
        if (v === 8) sp.post(8.5);
      },
    );
    await expect(sp.write(11)).rejects.toThrow(/drive limits/);
    await expect(sp.write(7)).rejects.toThrow("seven is unlucky");
    expect(sp.value).toBe(0);
    await sp.write("3.5");
    expect(sp.value).toBe(3.5);
    await sp.write(8);
    expect(sp.value).toBe(8.5);
    expect(seen).toEqual([7, 3.5, 8]);
  });

  test("overlapping writes: handlers called at once, completions in order, the handler's own post wins", async () => {
    const reg = new PvRegistry();
    const answers: Array<() => void> = [];
    const calls: number[] = [];
    const pv = reg.add({ name: "T:OV", kind: "double", writable: true }, (v) => {
      calls.push(v as number);
      return new Promise<void>((resolve) => answers.push(resolve));
    });
    const done: number[] = [];
    const w1 = pv.write(1).then(() => done.push(1));
    const w2 = pv.write(2).then(() => done.push(2));
    expect(calls).toEqual([1, 2]); // both handlers already called
    answers[1]?.(); // the second answers first …
    await Bun.sleep(1);
    expect(done).toEqual([]); // … but completes only after the first
    expect(pv.value).toBe(0);
    answers[0]?.();
    await Promise.all([w1, w2]);
    expect(done).toEqual([1, 2]);
    expect(pv.value).toBe(2);
    // A handler that posts its own value (a clamp) keeps it, also behind an earlier write.
    const clamp = reg.add({ name: "T:CL", kind: "double", writable: true }, async (v) => {
      await Bun.sleep(1);
      if ((v as number) > 10) clamp.post(10);
    });
    await Promise.all([clamp.write(5), clamp.write(50)]);
    expect(clamp.value).toBe(10);
    // No handler: done at once, nothing pending.
    const plain = reg.add({ name: "T:PL", kind: "double", writable: true });
    expect(plain.beginWrite(3)).toBeNull();
    expect(plain.value).toBe(3);
  });

  test("startWrite: the waiter is told once, synchronously when nothing is pending", () => {
    const reg = new PvRegistry();
    const told: Array<PvWriteError | null> = [];
    const waiter = { writeCompleted: (e: PvWriteError | null) => told.push(e) };
    const plain = reg.add({
      name: "T:SW",
      kind: "double",
      writable: true,
      meta: { controlLow: 0, controlHigh: 10 },
    });
    expect(plain.startWrite(4, {}, waiter)).toBe(false);
    expect(told).toEqual([null]);
    expect(plain.value).toBe(4);
    expect(plain.startWrite(11, {}, waiter)).toBe(false); // drive limits
    expect(told[1]).toBeInstanceOf(PvWriteError);
    expect(told[1]?.code).toBe("range");
    const ro = reg.add({ name: "T:SWR", kind: "double" });
    expect(ro.startWrite(1, {}, waiter)).toBe(false);
    expect(told[2]?.code).toBe("readonly");
    const thrower = reg.add({ name: "T:SWT", kind: "double", writable: true }, () => {
      throw new Error("no");
    });
    expect(thrower.startWrite(1, {}, waiter)).toBe(false);
    expect(told[3]?.message).toBe("no");
    expect(thrower.value).toBe(0);
    expect(told).toHaveLength(4);
  });

  test("startWrite: pending writes complete in order, failures and synchronous answers in their turn", async () => {
    const reg = new PvRegistry();
    const answers: Array<{ ok: () => void; no: (e: Error) => void }> = [];
    let mode: "async" | "throw" | "sync" = "async";
    const pv = reg.add({ name: "T:SWO", kind: "double", writable: true }, () => {
      if (mode === "throw") throw new Error("refused in the handler");
      if (mode === "sync") return;
      return new Promise<void>((ok, no) => answers.push({ ok, no }));
    });
    const done: string[] = [];
    const waiter = (tag: string) => ({
      writeCompleted: (e: PvWriteError | null) => {
        done.push(`${tag}:${e === null ? "ok" : e.message}`);
        done.push(`${tag} value ${pv.value}`);
      },
    });
    expect(pv.startWrite(1, {}, waiter("a"))).toBe(true);
    expect(pv.startWrite(2, {}, waiter("b"))).toBe(true);
    mode = "throw";
    expect(pv.startWrite(3, {}, waiter("c"))).toBe(true); // refused, but after a and b
    mode = "sync";
    expect(pv.startWrite(4, {}, waiter("d"))).toBe(true); // answered, but after c
    mode = "async";
    expect(pv.startWrite(5, {}, waiter("e"))).toBe(true);
    answers[2]?.ok(); // e answers first …
    answers[1]?.no(new Error("b refused"));
    await Bun.sleep(1);
    expect(done).toEqual([]); // … but nothing completes before a
    answers[0]?.ok();
    await Bun.sleep(1);
    expect(done).toEqual([
      "a:ok",
      "a value 1",
      "b:b refused",
      "b value 1",
      "c:refused in the handler",
      "c value 1",
      "d:ok",
      "d value 4",
      "e:ok",
      "e value 5",
    ]);
  });

  test("startWrite: 10,000 writes answered one event-loop turn later all complete, in order", async () => {
    const reg = new PvRegistry();
    const pv = reg.add(
      { name: "T:SWB", kind: "long", writable: true },
      () => new Promise<void>((ok) => setImmediate(ok)),
    );
    const seen: number[] = [];
    const waiter = { writeCompleted: () => seen.push(pv.value as number) };
    for (let i = 0; i < 10_000; i++) pv.startWrite(i, {}, waiter);
    while (seen.length < 10_000) await Bun.sleep(5);
    expect(seen.every((v, i) => v === i)).toBe(true);
    // The same through the promise form, after the pooled records were reused.
    await Promise.all([pv.write(7), pv.write(8)]);
    expect(pv.value).toBe(8);
  });

  test("arrays clamp to count, strings to 39 bytes, bad input is refused", () => {
    const reg = new PvRegistry();
    const arr = reg.add({ name: "T:ARR", kind: "double", count: 3 });
    arr.post([1, 2, 3, 4, 5]);
    expect(Array.from(arr.value as Float64Array)).toEqual([1, 2, 3]);
    const s = reg.add({ name: "T:S", kind: "string" });
    s.post("x".repeat(100));
    expect((s.value as string).length).toBe(39);
    const l = reg.add({ name: "T:L", kind: "long" });
    expect(() => l.post("abc")).toThrow(PvSpecError);
    expect(() => reg.add({ name: "T:L", kind: "long" })).toThrow(/already exists/);
    expect(() => reg.add({ name: "bad name", kind: "long" })).toThrow(PvSpecError);
    expect(() =>
      reg.add({ name: "T:E2", kind: "enum", meta: { states: Array(17).fill("s") } }),
    ).toThrow(/16/);
  });

  test("registry removal tells holders and frees the name", () => {
    const reg = new PvRegistry();
    const pv = reg.add({ name: "T:R", kind: "double" });
    let told = 0;
    pv.onRemove(() => told++);
    const removed: string[] = [];
    reg.onRemove((p) => removed.push(p.name));
    expect(reg.remove("T:R")).toBe(true);
    expect(told).toBe(1);
    expect(removed).toEqual(["T:R"]);
    expect(reg.has("T:R")).toBe(false);
    reg.add({ name: "T:R", kind: "double" });
    expect(reg.size).toBe(1);
  });
});
