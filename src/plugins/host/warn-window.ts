/**
 * At most one log line per window for a warning a plugin can trigger at will (a malformed `setPv`
 * batch: a hostile plugin could send thousands a second and flood the server's log). The first
 * occurrence after a quiet window is logged at once; those that follow within the window are
 * counted and reported in one line when it ends, with the last reason.
 */
export class WarnWindow {
  /** When the last line was logged (performance.now()); -Infinity: never. */
  private lastLine = Number.NEGATIVE_INFINITY;
  private suppressed = 0;
  private lastReason = "";
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly windowMs: number,
    /** Logs one line: `count` occurrences, the last with `reason`. */
    private readonly emit: (count: number, reason: string) => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** One occurrence. */
  note(reason: string): void {
    const t = this.now();
    if (this.timer === null && t - this.lastLine >= this.windowMs) {
      this.lastLine = t;
      this.emit(1, reason);
      return;
    }
    this.suppressed++;
    this.lastReason = reason;
    if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(), Math.max(0, this.lastLine + this.windowMs - t));
      this.timer.unref?.();
    }
  }

  /** Logs what was counted (the window's end, or the plugin's). */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.suppressed === 0) return;
    const n = this.suppressed;
    this.suppressed = 0;
    this.lastLine = this.now();
    this.emit(n, this.lastReason);
  }
}
