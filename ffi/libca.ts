/**
 * The libca symbol table: the only place that calls `dlopen` on the EPICS Channel Access client
 * library. Each symbol carries its C prototype (epics-base `modules/ca/src/client/cadef.h`) as a
 * comment because Debian ships no headers with the runtime package.
 *
 * Loading is lazy: nothing here runs at import time, so a host without libca still starts and
 * serves PVs; only a caller of the client gets a CaLibraryError naming the library and the package.
 */
import { dlopen, FFIType } from "bun:ffi";
import { CaLibraryError } from "./errors.ts";

/** Debian package that ships the library (named in the error when it is missing). */
export const LIBCA_PACKAGE = "libca4.13.5";
/** Soname tried first: the exact ABI we declare prototypes for. */
export const LIBCA_SONAME = "libca.so.4.13.5";

const { ptr, cstring, i32, i64, u32, u64_fast, f64, i16 } = FFIType;

/** The declared symbols; types follow the x86_64/aarch64 LP64 ABI (long = 64 bits). */
const symbols = {
  // int ca_context_create(enum ca_preemptive_callback_select select);
  ca_context_create: { args: [i32], returns: i32 },
  // void ca_context_destroy(void);
  ca_context_destroy: { args: [], returns: FFIType.void },
  // struct ca_client_context *ca_current_context(void);
  ca_current_context: { args: [], returns: ptr },
  // int ca_add_fd_registration(CAFDHANDLER *pHandler, void *pArg);
  //   typedef void CAFDHANDLER(void *parg, int fd, int opened);
  ca_add_fd_registration: { args: [ptr, ptr], returns: i32 },
  // int ca_add_exception_event(caExceptionHandler *pfunc, void *pArg);
  //   typedef void caExceptionHandler(struct exception_handler_args);
  ca_add_exception_event: { args: [ptr, ptr], returns: i32 },
  // int ca_create_channel(const char *pChanName, caCh *pConnStateCallback, void *pUserPrivate,
  //                       capri priority, chid *pChanID);
  //   typedef void caCh(struct connection_handler_args);  capri = unsigned
  ca_create_channel: { args: [ptr, ptr, ptr, u32, ptr], returns: i32 },
  // int ca_clear_channel(chid chanId);
  ca_clear_channel: { args: [ptr], returns: i32 },
  // int ca_replace_access_rights_event(chid chan, caArh *pfunc);
  //   typedef void caArh(struct access_rights_handler_args);
  ca_replace_access_rights_event: { args: [ptr, ptr], returns: i32 },
  // int ca_array_get_callback(chtype type, unsigned long count, chid chanId,
  //                           caEventCallBackFunc *pFunc, void *pArg);   chtype = long
  ca_array_get_callback: { args: [i64, u64_fast, ptr, ptr, ptr], returns: i32 },
  // int ca_array_put(chtype type, unsigned long count, chid chanId, const void *pValue);
  ca_array_put: { args: [i64, u64_fast, ptr, ptr], returns: i32 },
  // int ca_array_put_callback(chtype type, unsigned long count, chid chanId, const void *pValue,
  //                           caEventCallBackFunc *pFunc, void *pArg);
  ca_array_put_callback: { args: [i64, u64_fast, ptr, ptr, ptr, ptr], returns: i32 },
  // int ca_create_subscription(chtype type, unsigned long count, chid chanId, long mask,
  //                            caEventCallBackFunc *pFunc, void *pArg, evid *pEventID);
  ca_create_subscription: { args: [i64, u64_fast, ptr, i64, ptr, ptr, ptr], returns: i32 },
  // int ca_clear_subscription(evid eventID);
  ca_clear_subscription: { args: [ptr], returns: i32 },
  // int ca_pend_event(ca_real timeout);   ca_real = double; ca_poll() is a macro for 1e-12
  ca_pend_event: { args: [f64], returns: i32 },
  // int ca_flush_io(void);
  ca_flush_io: { args: [], returns: i32 },
  // short ca_field_type(chid chan);   -1 (TYPENOTCONN) while disconnected
  ca_field_type: { args: [ptr], returns: i16 },
  // unsigned long ca_element_count(chid chan);
  ca_element_count: { args: [ptr], returns: u64_fast },
  // enum channel_state ca_state(chid chan);   cs_never_conn 0, cs_prev_conn 1, cs_conn 2, cs_closed 3
  ca_state: { args: [ptr], returns: i32 },
  // unsigned ca_read_access(chid chan);
  ca_read_access: { args: [ptr], returns: u32 },
  // unsigned ca_write_access(chid chan);
  ca_write_access: { args: [ptr], returns: u32 },
  // const char *ca_host_name(chid chan);
  ca_host_name: { args: [ptr], returns: cstring },
  // const char *ca_message(long ca_status);
  ca_message: { args: [i64], returns: cstring },
  // int ca_get_ioc_connection_count(void);   TCP circuits of the current context
  ca_get_ioc_connection_count: { args: [], returns: i32 },
  // const char *ca_version(void);
  ca_version: { args: [], returns: cstring },
} as const;

/** The bound library as bun:ffi returns it. */
export type LibCa = ReturnType<typeof dlopen<typeof symbols>>;

let loaded: LibCa | undefined;
let loadError: CaLibraryError | undefined;

/**
 * Candidate paths in search order. IOCMNG_LIBCA, when set, is the only candidate: an operator who
 * names a library wants that one, not a silent fallback. Otherwise the exact soname, then the
 * development symlink.
 */
export function libcaCandidates(env: Record<string, string | undefined> = process.env): string[] {
  const explicit = env.IOCMNG_LIBCA?.trim();
  if (explicit) return [explicit];
  return [LIBCA_SONAME, "libca.so"];
}

/**
 * Loads libca on first use (once per thread: each Worker has its own bun:ffi handle) and returns
 * the bound symbols; throws CaLibraryError listing what was tried when no candidate loads.
 */
export function loadLibca(): LibCa {
  if (loaded) return loaded;
  if (loadError) throw loadError;
  const tried: string[] = [];
  for (const path of libcaCandidates()) {
    try {
      loaded = dlopen(path, symbols);
      return loaded;
    } catch (e) {
      tried.push(`${path}: ${(e as Error).message}`);
    }
  }
  loadError = new CaLibraryError(
    `Channel Access client library not found (tried ${tried.join("; ")}). ` +
      `Install the Debian package ${LIBCA_PACKAGE} (apt-get install ${LIBCA_PACKAGE}) ` +
      "or point IOCMNG_LIBCA at libca.so.",
  );
  throw loadError;
}

/** Whether libca can be loaded on this host (never throws). */
export function libcaAvailable(): boolean {
  try {
    loadLibca();
    return true;
  } catch {
    return false;
  }
}

/** Array size libca may transfer when EPICS_CA_MAX_ARRAY_BYTES is unset (libca's own default is 16 KiB). */
const DEFAULT_MAX_ARRAY_BYTES = "10000000";

const libcSymbols = {
  // int setenv(const char *name, const char *value, int overwrite);
  setenv: { args: [ptr, ptr, i32], returns: i32 },
  // char *getenv(const char *name);
  getenv: { args: [ptr], returns: cstring },
  // int unsetenv(const char *name);
  unsetenv: { args: [ptr], returns: i32 },
  // int fcntl(int fd, int cmd, ...);   called with one int argument (F_GETFL ignores it)
  fcntl: { args: [i32, i32, i32], returns: i32 },
  // int dup(int oldfd);
  dup: { args: [i32], returns: i32 },
} as const;
/** Variables this module wrote into the C environment (so it can undo them, and only them). */
const written = new Set<string>();
let libc: ReturnType<typeof dlopen<typeof libcSymbols>> | undefined;

function loadLibc() {
  return dlopen(process.platform === "darwin" ? "libc.dylib" : "libc.so.6", libcSymbols);
}

/**
 * Sets O_NONBLOCK on `fd` and returns a duplicate of it (or -1). Done through libc from
 * JavaScript rather than in the TinyCC shim: the shim is compiled with -nostdlib (see shim.ts),
 * where only a few libc names resolve.
 */
export function nonblockingDup(fd: number): number {
  libc ??= loadLibc();
  const F_GETFL = 3;
  const F_SETFL = 4;
  const O_NONBLOCK = 0o4000;
  const fl = libc.symbols.fcntl(fd, F_GETFL, 0);
  if (fl >= 0) libc.symbols.fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  return libc.symbols.dup(fd);
}

/**
 * Copies every EPICS_* variable of process.env into the C environment, because libca reads its
 * configuration with getenv() when a context is created and Bun's process.env writes never reach
 * the C environment. Only changed values are written (setenv is not safe against concurrent
 * getenv in libca threads of other contexts, so we touch the environment as little as possible);
 * a variable we wrote that process.env no longer has is unset again.
 * EPICS_CA_MAX_ARRAY_BYTES defaults to 10 MB, as beamline values files usually set it.
 */
export function syncEpicsEnv(): void {
  libc ??= loadLibc();
  const want: Record<string, string> = { EPICS_CA_MAX_ARRAY_BYTES: DEFAULT_MAX_ARRAY_BYTES };
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("EPICS_") && v !== undefined) want[k] = v;
  }
  for (const [k, v] of Object.entries(want)) {
    const key = Buffer.from(`${k}\0`);
    const current = libc.symbols.getenv(key);
    if (current !== null && String(current) === v) continue;
    libc.symbols.setenv(key, Buffer.from(`${v}\0`), 1);
    written.add(k);
  }
  // A variable we copied earlier and JavaScript has since deleted must not linger in C.
  for (const k of written) {
    if (k in want) continue;
    libc.symbols.unsetenv(Buffer.from(`${k}\0`));
    written.delete(k);
  }
}
