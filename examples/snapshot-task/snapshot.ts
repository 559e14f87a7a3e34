import { TaskBase } from "iocmng";

/**
 * On each trigger, acquires `samples` readings of a (simulated) signal scaled by GAIN, publishes
 * them as a waveform with their mean, and grades the snapshot GOOD or NOISY.
 */
export class Snapshot extends TaskBase {
  private phase = 0;

  override async initialize(): Promise<void> {
    this.setMessage("waiting for RUN");
  }

  override async execute(): Promise<void> {
    const n = Math.min(64, Math.max(1, Math.trunc(Number(this.parameters.samples ?? 8))));
    const gain = Number(this.getPv("GAIN"));
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      // Deterministic "signal" so the snapshot is reproducible in tests.
      samples.push(gain * (10 + Math.sin(this.phase + i)));
    }
    this.phase += n;
    const mean = samples.reduce((a, b) => a + b, 0) / n;
    const spread = Math.max(...samples) - Math.min(...samples);
    this.setPv("SAMPLES", samples);
    this.setPv("MEAN", mean);
    this.setPv("QUALITY", spread > 0.5 * Math.abs(mean) ? "NOISY" : "GOOD");
    this.setMessage(`snapshot ${this.cycleCount + 1}: ${n} samples`);
  }

  override async cleanup(): Promise<void> {}
}
