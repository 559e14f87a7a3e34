/**
 * A counted set of names kept as bytes in one buffer: the search threads' mirror of the served
 * names (src/ca/server/search-worker.ts, src/pva/server/pva-search-worker.ts). A Map of 11,000
 * name strings costs each search session ~1.1–1.4 MB of JS heap (a string, a map entry, and for
 * CA a slot object per name); here a name costs its bytes plus a 12-byte record header and a
 * 4-byte table slot or two, ~0.5 MB for the same names (docs/benchmarks.md, "Product-path memory,
 * step by step").
 *
 * Names are matched by their encoded bytes: "latin1" for CA (one byte per char, as the CA server
 * decodes names everywhere; a name with a char above 0xFF can never match, so it is not kept),
 * "utf8" for pvAccess (the wire's encoding; a string that is not well-formed UTF-16 has no UTF-8
 * form a decoded search could equal, so it is not kept either).
 *
 * Layout: each name is a record in `arena` — count, hash, length (u32 each), bytes — and an
 * open-addressing table holds record offset + 1 (0 empty, -1 removed). Records of removed names
 * stay until they are over half the arena; then the live ones are copied into a fresh arena.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const EMPTY = 0;
const REMOVED = -1;
const HEADER = 12;

export type NameEncoding = "latin1" | "utf8";

export class NameSet {
  private arena = new Uint8Array(1024);
  private view = new DataView(this.arena.buffer);
  /** Bytes of `arena` in use, and of those, bytes of removed names' records. */
  private used = 0;
  private dead = 0;
  /** Record offset + 1 per slot, or EMPTY, or REMOVED. */
  private table = new Int32Array(64);
  private live = 0;
  private removed = 0;
  /**
   * Where a name is encoded for add/remove/hasName. A Buffer, as node:dgram hands the CA search
   * its datagrams: `find` and `hashBytes` then see one array type, and their compiled code is not
   * thrown away when a search follows a name change (or the warm-up) on the other type.
   */
  private scratch: Uint8Array = Buffer.alloc(256);
  private readonly encoder = new TextEncoder();

  constructor(private readonly encoding: NameEncoding) {}

  /** Distinct names held. */
  get size(): number {
    return this.live;
  }

  /** One more server of `name` (a name may be served twice, e.g. a PV and an RPC handler). */
  add(name: string): void {
    const n = this.encode(name);
    if (n < 0) return;
    const h = hashBytes(this.scratch, 0, n);
    const at = this.find(this.scratch, 0, n, h);
    if (at >= 0) {
      const rec = (this.table[at] as number) - 1;
      this.view.setUint32(rec, this.view.getUint32(rec) + 1);
      return;
    }
    if ((this.live + this.removed + 1) * 4 > this.table.length * 3) this.rehash();
    const rec = this.append(n, h);
    this.insert(rec + 1, h);
    this.live++;
  }

  /** One fewer server of `name`; it is gone when none is left. */
  remove(name: string): void {
    const n = this.encode(name);
    if (n < 0) return;
    const at = this.find(this.scratch, 0, n, hashBytes(this.scratch, 0, n));
    if (at < 0) return;
    const rec = (this.table[at] as number) - 1;
    const count = this.view.getUint32(rec) - 1;
    if (count > 0) {
      this.view.setUint32(rec, count);
      return;
    }
    this.table[at] = REMOVED;
    this.live--;
    this.removed++;
    this.dead += HEADER + this.view.getUint32(rec + 8);
    if (this.dead > 4096 && this.dead * 2 > this.used) this.compact();
  }

  /** True if bytes[start, end) are a name held (its encoded bytes). */
  has(bytes: Uint8Array, start: number, end: number): boolean {
    return this.find(bytes, start, end, hashBytes(bytes, start, end)) >= 0;
  }

  /** True if `name` is held. */
  hasName(name: string): boolean {
    const n = this.encode(name);
    return n >= 0 && this.has(this.scratch, 0, n);
  }

  /** Encodes `name` into `scratch`; its length, or -1 if it can never match. */
  private encode(name: string): number {
    const utf8 = this.encoding === "utf8";
    if (name.length * 3 > this.scratch.length) this.scratch = Buffer.alloc(name.length * 3);
    const s = this.scratch;
    // One byte per char in both encodings up to 0x7F (PV names almost always), and in latin1 up
    // to 0xFF; this loop is the PVA search's per-name cost, so the encoder only sees the rest.
    const oneByte = utf8 ? 0x7f : 0xff;
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      if (c > oneByte) {
        if (!utf8) return -1;
        if (!name.isWellFormed()) return -1;
        return this.encoder.encodeInto(name, s).written;
      }
      s[i] = c;
    }
    return name.length;
  }

  /** Table index of the name spelled by bytes[start, end), or -1. */
  private find(bytes: Uint8Array, start: number, end: number, h: number): number {
    const table = this.table;
    const mask = table.length - 1;
    const len = end - start;
    const arena = this.arena;
    const view = this.view;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = table[i] as number;
      if (e === EMPTY) return -1;
      if (e === REMOVED) continue;
      const rec = e - 1;
      if (view.getUint32(rec + 4) !== h || view.getUint32(rec + 8) !== len) continue;
      let same = true;
      for (let k = 0, p = rec + HEADER; k < len; k++, p++) {
        if (arena[p] !== bytes[start + k]) {
          same = false;
          break;
        }
      }
      if (same) return i;
    }
  }

  /** Appends a record of count 1 for the `n` bytes in `scratch`; returns its offset. */
  private append(n: number, h: number): number {
    const need = this.used + HEADER + n;
    if (need > this.arena.length) {
      // ×1.5: a plugin's names arrive in batches; doubling would leave up to half unused.
      const bigger = new Uint8Array(Math.max(need, Math.ceil(this.arena.length * 1.5)));
      bigger.set(this.arena.subarray(0, this.used));
      this.arena = bigger;
      this.view = new DataView(bigger.buffer);
    }
    const rec = this.used;
    this.view.setUint32(rec, 1);
    this.view.setUint32(rec + 4, h);
    this.view.setUint32(rec + 8, n);
    this.arena.set(this.scratch.subarray(0, n), rec + HEADER);
    this.used = need;
    return rec;
  }

  private insert(entry: number, h: number): void {
    const mask = this.table.length - 1;
    let i = h & mask;
    while ((this.table[i] as number) > 0) i = (i + 1) & mask;
    if (this.table[i] === REMOVED) this.removed--;
    this.table[i] = entry;
  }

  /** A table of at least twice the live names' number, without removed slots. */
  private rehash(): void {
    const oldTable = this.table;
    let size = 64;
    while (size < (this.live + 1) * 2) size *= 2;
    this.table = new Int32Array(size);
    this.removed = 0;
    for (let i = 0; i < oldTable.length; i++) {
      const e = oldTable[i] as number;
      if (e > 0) this.insert(e, this.view.getUint32(e - 1 + 4));
    }
  }

  /** Copies the live records into a fresh arena (removed ones over half of it). */
  private compact(): void {
    const old = this.arena;
    const oldView = this.view;
    this.arena = new Uint8Array(Math.max(1024, (this.used - this.dead) * 2));
    this.view = new DataView(this.arena.buffer);
    this.used = 0;
    this.dead = 0;
    const table = this.table;
    for (let i = 0; i < table.length; i++) {
      const e = table[i] as number;
      if (e <= 0) continue;
      const rec = e - 1;
      const size = HEADER + oldView.getUint32(rec + 8);
      this.arena.set(old.subarray(rec, rec + size), this.used);
      table[i] = this.used + 1;
      this.used += size;
    }
    this.rehash();
  }
}

function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) h = Math.imul(h ^ (bytes[i] as number), FNV_PRIME);
  return h >>> 0;
}
