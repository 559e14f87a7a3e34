import { TaskBase } from "iocmng";

/**
 * A simulated axis: READING moves toward the operator's SETPOINT at `rate` units per second;
 * AT_SETPOINT tells when it got there.
 */
export class Ramp extends TaskBase {
  override async initialize(): Promise<void> {
    this.logger.info({ rate: this.parameters.rate }, "ramp ready");
  }

  override async execute(): Promise<void> {
    const target = Number(this.getPv("SETPOINT"));
    const now = Number(this.getPv("READING"));
    const maxStep = Number(this.parameters.rate ?? 1) * this.interval;
    const delta = target - now;
    const next = Math.abs(delta) <= maxStep ? target : now + Math.sign(delta) * maxStep;
    this.setPv("READING", next);
    this.setPv("AT_SETPOINT", next === target ? 1 : 0);
  }

  /** Refuses a new setpoint that is not a number (the client's put fails with this message). */
  override onPvWrite(name: string, value: unknown): void {
    if (name === "SETPOINT" && !Number.isFinite(Number(value))) {
      throw new Error("SETPOINT must be a finite number");
    }
  }

  override async cleanup(): Promise<void> {
    this.logger.info("ramp stopped");
  }
}
