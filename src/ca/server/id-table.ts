/**
 * A map from u32 ids (a client's subscription ids) to objects: open addressing with linear probing
 * and backward-shift deletion (no tombstones). Clients add and cancel subscriptions by the million
 * (acctst: 500 at a time, 10,000 times); a JS Map grows and shrinks (rehashes) on every such
 * round. This table allocates only when it grows past half full; small tables never shrink, large
 * ones shrink when less than 1/16 full, so churn at one size allocates nothing.
 */

const MIN_CAPACITY = 16;
// At or below this capacity a table is kept whatever its fill (the churn case).
const KEEP_CAPACITY = 4096;

export class IdTable<T> {
  private keys = new Int32Array(MIN_CAPACITY);
  private vals: (T | undefined)[] = new Array<T | undefined>(MIN_CAPACITY).fill(undefined);
  private mask = MIN_CAPACITY - 1;
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(id: number): T | undefined {
    const k = id | 0;
    const { keys, vals, mask } = this;
    for (let i = slotOf(k, mask); ; i = (i + 1) & mask) {
      const v = vals[i];
      if (v === undefined || keys[i] === k) return v;
    }
  }

  /** Sets `id` to `value` (replacing any value it had). */
  set(id: number, value: T): void {
    if ((this.count + 1) * 2 > this.mask + 1) this.resize((this.mask + 1) * 2);
    const k = id | 0;
    const { keys, vals, mask } = this;
    for (let i = slotOf(k, mask); ; i = (i + 1) & mask) {
      if (vals[i] === undefined) {
        keys[i] = k;
        vals[i] = value;
        this.count++;
        return;
      }
      if (keys[i] === k) {
        vals[i] = value;
        return;
      }
    }
  }

  /** Removes `id`; false when it was not there. */
  delete(id: number): boolean {
    const k = id | 0;
    const { keys, vals, mask } = this;
    let i = slotOf(k, mask);
    for (;;) {
      if (vals[i] === undefined) return false;
      if (keys[i] === k) break;
      i = (i + 1) & mask;
    }
    // Backward shift: move later entries of the probe run into the hole they may not skip.
    let hole = i;
    for (let j = (i + 1) & mask; vals[j] !== undefined; j = (j + 1) & mask) {
      const home = slotOf(keys[j] as number, mask);
      // Entry j may fill the hole when its home is not cyclically within (hole, j].
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        keys[hole] = keys[j] as number;
        vals[hole] = vals[j];
        hole = j;
      }
    }
    vals[hole] = undefined;
    this.count--;
    const cap = mask + 1;
    if (cap > KEEP_CAPACITY && this.count * 16 < cap) this.resize(cap / 4);
    return true;
  }

  /** Removes everything (back to the initial size). */
  clear(): void {
    this.keys = new Int32Array(MIN_CAPACITY);
    this.vals = new Array<T | undefined>(MIN_CAPACITY).fill(undefined);
    this.mask = MIN_CAPACITY - 1;
    this.count = 0;
  }

  private resize(capacity: number): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    const cap = Math.max(MIN_CAPACITY, capacity);
    this.keys = new Int32Array(cap);
    this.vals = new Array<T | undefined>(cap).fill(undefined);
    this.mask = cap - 1;
    this.count = 0;
    for (let i = 0; i < oldVals.length; i++) {
      const v = oldVals[i];
      if (v !== undefined) this.set(oldKeys[i] as number, v);
    }
  }
}

// Multiplicative hashing with the high bits folded down: sequential ids (libca allocates them in
// order) and ids differing only in high bits both spread over the table.
function slotOf(k: number, mask: number): number {
  const h = Math.imul(k, 0x9e3779b1);
  return (h ^ (h >>> 15)) & mask;
}
