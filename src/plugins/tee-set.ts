/** Small set and promise helpers of the controller. */

/** A set whose adds and deletes also go to a second set (a per-add set of hosts + the shared one). */
export class TeeSet<T> extends Set<T> {
  constructor(
    private readonly own: Set<T>,
    private readonly shared: Set<T>,
  ) {
    super();
  }
  override add(v: T): this {
    this.own?.add(v);
    this.shared?.add(v);
    return super.add(v);
  }
  override delete(v: T): boolean {
    this.own?.delete(v);
    this.shared?.delete(v);
    return super.delete(v);
  }
}

/** Waits for every promise to settle, or `ms`, whichever comes first. Never throws. */
export async function settleWithin(all: Promise<unknown>[], ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.allSettled(all),
    new Promise<void>((ok) => {
      timer = setTimeout(ok, ms);
    }),
  ]);
  clearTimeout(timer);
}
