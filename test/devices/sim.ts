/**
 * Simulated beamline hardware served by our own CA server, for device-layer tests: PVs whose
 * write handlers move a readback the way a motor record or a TML axis does.
 */
import type { PvRegistry } from "../../src/pv/index.ts";

/** A motor record on our server: a write to .VAL moves .RBV step by step; .STOP ends the move. */
export function simulateMotor(r: PvRegistry, prefix: string, step = 0.5): void {
  const rbv = r.add({ name: `${prefix}.RBV`, kind: "double", initial: 0, meta: { units: "mm" } });
  const dmov = r.add({ name: `${prefix}.DMOV`, kind: "long", initial: 1 });
  const movn = r.add({ name: `${prefix}.MOVN`, kind: "long", initial: 0 });
  let stopRequested = false;
  r.add({ name: `${prefix}.STOP`, kind: "long", writable: true }, () => {
    stopRequested = true;
  });
  r.add({ name: `${prefix}.VAL`, kind: "double", writable: true }, async (target) => {
    stopRequested = false;
    dmov.post(0);
    movn.post(1);
    let pos = rbv.value as number;
    while (!stopRequested && pos !== target) {
      await Bun.sleep(2);
      const d = (target as number) - pos;
      pos = Math.abs(d) <= step ? (target as number) : pos + Math.sign(d) * step;
      rbv.post(pos);
    }
    movn.post(0);
    dmov.post(1);
  });
}

/** A Technosoft TML axis: VAL_SP + ACT=ABS_POS + ACTX_SP=RUN starts a move; MSTA bit 10 = moving. */
export function simulateTml(r: PvRegistry, prefix: string, step = 0.5): void {
  const rbv = r.add({ name: `${prefix}:RBV`, kind: "double", initial: 0 });
  const msta = r.add({ name: `${prefix}:MSTA`, kind: "long", initial: 0 });
  const sp = r.add({ name: `${prefix}:VAL_SP`, kind: "double", writable: true });
  const act = r.add({ name: `${prefix}:ACT`, kind: "long", writable: true });
  let running = false;
  r.add({ name: `${prefix}:ACTX_SP`, kind: "long", writable: true }, (v) => {
    if (v === 2) running = false;
    if (v !== 1 || act.value !== 2 || running) return;
    running = true;
    msta.post((msta.value as number) | 0x400);
    const tick = () => {
      const pos = rbv.value as number;
      const target = sp.value as number;
      if (!running || pos === target) {
        running = false;
        msta.post((msta.value as number) & ~0x400);
        return;
      }
      const d = target - pos;
      rbv.post(Math.abs(d) <= step ? target : pos + Math.sign(d) * step);
      setTimeout(tick, 2);
    };
    setTimeout(tick, 2);
  });
}
