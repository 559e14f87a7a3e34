/**
 * PV names as a hash table over their bytes: a name in a request (CREATE_CHAN, a search) is
 * matched where it lies in the received bytes, without decoding a string. In a connect storm
 * the decode + string-keyed lookup was the largest single cost of CREATE_CHAN and, on the search
 * thread, most of its garbage (docs/benchmarks.md). Bytes are compared as latin1, the decoding
 * used everywhere else in the server: a name with a char above 0xFF can never match.
 */

/** One name and its value. */
interface Slot<V> {
  name: string;
  value: V;
}

/** Map from PV name to a value, looked up by the name's bytes. */
export class NameIndex<V> {
  /** FNV-1a hash → the slot, or every slot with that hash. */
  private readonly byHash = new Map<number, Slot<V> | Slot<V>[]>();
  private count = 0;

  /** Number of names held. */
  get size(): number {
    return this.count;
  }

  /** Sets the value of a name (replacing any). */
  set(name: string, value: V): void {
    const h = hashName(name);
    const cur = this.byHash.get(h);
    if (cur === undefined) {
      this.byHash.set(h, { name, value });
    } else if (!Array.isArray(cur)) {
      if (cur.name === name) {
        cur.value = value;
        return;
      }
      this.byHash.set(h, [cur, { name, value }]);
    } else {
      const slot = cur.find((x) => x.name === name);
      if (slot !== undefined) {
        slot.value = value;
        return;
      }
      cur.push({ name, value });
    }
    this.count++;
  }

  /** Removes a name; returns its value (undefined if absent). */
  delete(name: string): V | undefined {
    const h = hashName(name);
    const cur = this.byHash.get(h);
    if (cur === undefined) return undefined;
    let value: V;
    if (!Array.isArray(cur)) {
      if (cur.name !== name) return undefined;
      value = cur.value;
      this.byHash.delete(h);
    } else {
      const i = cur.findIndex((x) => x.name === name);
      if (i < 0) return undefined;
      value = (cur[i] as Slot<V>).value;
      cur.splice(i, 1);
      if (cur.length === 1) this.byHash.set(h, cur[0] as Slot<V>);
    }
    this.count--;
    return value;
  }

  /** The value of the name spelled by bytes[start, end), if held. */
  get(bytes: Uint8Array, start: number, end: number): V | undefined {
    const cur = this.byHash.get(hashBytes(bytes, start, end));
    if (cur === undefined) return undefined;
    if (!Array.isArray(cur)) return sameName(cur.name, bytes, start, end) ? cur.value : undefined;
    for (const x of cur) if (sameName(x.name, bytes, start, end)) return x.value;
    return undefined;
  }

  /** True if bytes[start, end) spell a held name. */
  has(bytes: Uint8Array, start: number, end: number): boolean {
    return this.get(bytes, start, end) !== undefined;
  }
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) h = Math.imul(h ^ (bytes[i] as number), FNV_PRIME);
  return h >>> 0;
}

/**
 * @internal The index's hash of a name: over char codes, so equal to the hash of the name's
 * latin1 bytes (a code above 0xFF has no such bytes; hashing it anyway is harmless since
 * sameName can never match it).
 */
export function hashName(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h >>> 0;
}

function sameName(name: string, bytes: Uint8Array, start: number, end: number): boolean {
  if (name.length !== end - start) return false;
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) !== bytes[start + i]) return false;
  return true;
}
