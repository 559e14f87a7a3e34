/**
 * The C side of the client's callbacks, compiled at runtime by Bun's embedded TinyCC (`bun:ffi`
 * `cc`), once per thread.
 *
 * Why C and not JSCallback: libca passes its callback arguments as structs *by value* (48 to
 * 80 bytes, i.e. on the stack), which JSCallback cannot receive; and in a non-preemptive context
 * libca still runs the callbacks on its own receive threads (while the owning thread sits inside
 * ca_pend_event), where touching the JS heap is unsafe. These callbacks therefore only copy what
 * libca delivers into a growable record buffer; JavaScript reads that buffer after ca_pend_event
 * returns. No lock is needed: libca serialises callbacks on its callback mutex, which the owning
 * thread holds except inside ca_pend_event, so callbacks and JS readers never overlap.
 *
 * A Worker that dies with channels open leaves its context's callback mutex held forever: libca's
 * threads then block instead of calling into code that may have been freed.
 */

import { cc, FFIType, type Pointer, toArrayBuffer } from "bun:ffi";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DBR_SIZE, DBR_TYPE_COUNT, DBR_VALUE_SIZE } from "./dbr.ts";
import { CaLibraryError } from "./errors.ts";

/** Record kinds written by the shim. */
export const REC = { EVENT: 1, CONN: 2, ACCESS: 3, EXCEPTION: 4 } as const;
/**
 * Record header (little-endian, 8-aligned): i32 kind, i32 status, i32 type, i32 count,
 * u64 usr, u64 chid, u32 nbytes, u32 reserved (op / access bits live in `type`), then nbytes of
 * data padded to 8.
 */
export const REC_HEADER = 40;
/** The shim stops buffering (and counts drops) beyond this many bytes per drain. */
const SHIM_LIMIT_BYTES = 256 * 1024 * 1024;

function source(): string {
  return `
typedef unsigned long size_t;
void *realloc(void *p, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
void free(void *p);

struct event_handler_args { void *usr; void *chid; long type; long count; const void *dbr; int status; };
struct connection_handler_args { void *chid; long op; };
struct exception_handler_args { void *usr; void *chid; long type; long count; void *addr;
  long stat; long op; const char *ctx; const char *pFile; unsigned lineNo; };
struct access_rights_handler_args { void *chid; unsigned ar; };

static const long dbr_size_t[${DBR_TYPE_COUNT}] = { ${DBR_SIZE.join(", ")} };
static const long dbr_value_size_t[${DBR_TYPE_COUNT}] = { ${DBR_VALUE_SIZE.join(", ")} };

static unsigned char *buf = 0;
static size_t len = 0, cap = 0;
static long dropped = 0;
static int wakefd = -1;

static unsigned char *reserve(size_t n) {
  if (len + n > cap) {
    size_t nc = cap ? cap : 65536;
    unsigned char *nb;
    if (len + n > ${SHIM_LIMIT_BYTES}UL) { dropped++; return 0; }
    while (nc < len + n) nc *= 2;
    nb = (unsigned char *) realloc(buf, nc);
    if (!nb) { dropped++; return 0; }
    buf = nb; cap = nc;
  }
  unsigned char *p = buf + len;
  len += n;
  return p;
}

static void put(int kind, int status, long type, long count, void *usr, void *chid,
                const void *data, size_t nbytes) {
  size_t padded = (nbytes + 7) & ~(size_t)7;
  unsigned char *p = reserve(${REC_HEADER} + padded);
  if (!p) return;
  int *h = (int *) p;
  h[0] = kind; h[1] = status; h[2] = (int) type; h[3] = (int) count;
  *(void **)(p + 16) = usr;
  *(void **)(p + 24) = chid;
  *(unsigned *)(p + 32) = (unsigned) nbytes;
  *(unsigned *)(p + 36) = 0;
  if (nbytes) memcpy(p + ${REC_HEADER}, data, nbytes);
}

static void on_event(struct event_handler_args a) {
  size_t n = 0;
  if (a.status == 1 && a.dbr && a.type >= 0 && a.type < ${DBR_TYPE_COUNT}) {
    n = dbr_size_t[a.type];
    if (a.count > 1) n += (size_t)(a.count - 1) * dbr_value_size_t[a.type];
  }
  put(${REC.EVENT}, a.status, a.type, a.count, a.usr, a.chid, n ? a.dbr : 0, n);
}

static void on_conn(struct connection_handler_args a) {
  put(${REC.CONN}, 0, a.op, 0, 0, a.chid, 0, 0);
}

static void on_access(struct access_rights_handler_args a) {
  put(${REC.ACCESS}, 0, (long)(a.ar & 3u), 0, 0, a.chid, 0, 0);
}

static void on_exception(struct exception_handler_args a) {
  size_t n = 0;
  if (a.ctx) while (n < 512 && a.ctx[n]) n++;
  put(${REC.EXCEPTION}, (int) a.stat, a.op, a.count, a.usr, a.chid, a.ctx, n);
}

static void on_fd(void *arg, int fd, int opened) {
  if (opened) wakefd = fd; else if (fd == wakefd) wakefd = -1;
}

void *shim_event_cb(void) { return (void *) on_event; }
void *shim_conn_cb(void) { return (void *) on_conn; }
void *shim_access_cb(void) { return (void *) on_access; }
void *shim_exception_cb(void) { return (void *) on_exception; }
void *shim_fd_cb(void) { return (void *) on_fd; }
void *shim_buf(void) { return buf; }
long shim_len(void) { return (long) len; }
long shim_take_dropped(void) { long d = dropped; dropped = 0; return d; }
void shim_reset(void) { len = 0; if (cap > (16UL << 20)) { free(buf); buf = 0; cap = 0; } }
int shim_wakefd(void) { return wakefd; }
void shim_clear_wakefd(void) { wakefd = -1; }
void shim_free(void) { free(buf); buf = 0; len = 0; cap = 0; dropped = 0; wakefd = -1; }
`;
}

const { ptr, i32, i64, void: none } = FFIType;
const shimSymbols = {
  shim_event_cb: { args: [], returns: ptr },
  shim_conn_cb: { args: [], returns: ptr },
  shim_access_cb: { args: [], returns: ptr },
  shim_exception_cb: { args: [], returns: ptr },
  shim_fd_cb: { args: [], returns: ptr },
  shim_buf: { args: [], returns: ptr },
  shim_len: { args: [], returns: i64 },
  shim_take_dropped: { args: [], returns: i64 },
  shim_reset: { args: [], returns: none },
  shim_wakefd: { args: [], returns: i32 },
  shim_clear_wakefd: { args: [], returns: none },
  shim_free: { args: [], returns: none },
} as const;

/** The compiled shim's functions. */
export type Shim = ReturnType<typeof cc<typeof shimSymbols>>["symbols"];

let compiled: ReturnType<typeof cc<typeof shimSymbols>> | undefined;

/**
 * Compiles the shim on first use in this thread and keeps it for the thread's lifetime (libca
 * holds pointers into it). Throws CaLibraryError when TinyCC is unavailable.
 */
export function loadShim(): Shim {
  if (compiled) return compiled.symbols;
  // cc() reads a file; in a `bun build --compile` binary there is no source tree, so write it.
  const dir = mkdtempSync(join(tmpdir(), "iocmng-cashim-"));
  const file = join(dir, "cashim.c");
  try {
    writeFileSync(file, source());
    // -nostdlib: TinyCC would otherwise link "-lc", i.e. read the libc.so linker script that only
    // libc6-dev ships: absent on a plain beamline host and in the scratch image, where cc() failed
    // with "library 'c' not found". Without it only the few names Bun's TinyCC binds itself
    // resolve (realloc, free, memcpy, memset: all the shim calls); fcntl and dup are done from
    // JavaScript (libca.ts nonblockingDup). test/rootfs runs a plugin using this.ca in the image.
    compiled = cc({ source: file, symbols: shimSymbols, flags: ["-nostdlib"] });
  } catch (e) {
    throw new CaLibraryError(`cannot compile the libca callback shim: ${(e as Error).message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return compiled.symbols;
}

/** One record of the shim's buffer; `data` is a view valid only during the visit. */
export interface ShimRecord {
  kind: number;
  status: number;
  type: number;
  count: number;
  usr: number;
  chid: number;
  data: Uint8Array;
}

/** Visits every record buffered since the last shim_reset (one reused record object). */
export function readRecords(shim: Shim, visit: (r: ShimRecord) => void): void {
  const len = Number(shim.shim_len());
  if (len === 0) return;
  const raw = shim.shim_buf();
  const base = typeof raw === "bigint" ? (Number(raw) as Pointer) : raw;
  if (!base) return;
  const bytes = new Uint8Array(toArrayBuffer(base, 0, len));
  const dv = new DataView(bytes.buffer, bytes.byteOffset, len);
  const r: ShimRecord = { kind: 0, status: 0, type: 0, count: 0, usr: 0, chid: 0, data: bytes };
  for (let off = 0; off + REC_HEADER <= len; ) {
    r.kind = dv.getInt32(off, true);
    r.status = dv.getInt32(off + 4, true);
    r.type = dv.getInt32(off + 8, true);
    r.count = dv.getInt32(off + 12, true);
    r.usr = dv.getUint32(off + 16, true) + dv.getUint32(off + 20, true) * 2 ** 32;
    r.chid = dv.getUint32(off + 24, true) + dv.getUint32(off + 28, true) * 2 ** 32;
    const nbytes = dv.getUint32(off + 32, true);
    const data = off + REC_HEADER;
    r.data = bytes.subarray(data, data + nbytes);
    off = data + ((nbytes + 7) & ~7);
    visit(r);
  }
}
