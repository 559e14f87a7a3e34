/**
 * The few libc calls the plugin sandbox needs and Bun does not expose: prctl (non-dumpable,
 * parent-death signal, no-new-privs, child subreaper), setrlimit, setpriority and the uid/gid
 * switch; and sched_setscheduler for the servers' real-time priority (src/common/realtime.ts).
 * Loaded lazily (dlopen on first use) so importing this file costs nothing; every function
 * returns an errno-style result instead of throwing, because the callers decide what is fatal.
 *
 * Constants are the Linux x86_64/aarch64 values (linux/prctl.h, asm-generic/resource.h).
 */
import { dlopen, FFIType, ptr, toArrayBuffer } from "bun:ffi";
import { existsSync, readdirSync } from "node:fs";

const { i32, u32, u64, ptr: pointer } = FFIType;

const symbols = {
  // int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);
  prctl: { args: [i32, u64, u64, u64, u64], returns: i32 },
  // int setrlimit(int resource, const struct rlimit *rlim);   struct rlimit { rlim_t cur, max; }
  setrlimit: { args: [i32, pointer], returns: i32 },
  // int getrlimit(int resource, struct rlimit *rlim);
  getrlimit: { args: [i32, pointer], returns: i32 },
  // int setpriority(int which, id_t who, int prio);
  setpriority: { args: [i32, u32, i32], returns: i32 },
  // int setgroups(size_t size, const gid_t *list);
  setgroups: { args: [u64, pointer], returns: i32 },
  // int setresgid(gid_t rgid, gid_t egid, gid_t sgid);
  setresgid: { args: [u32, u32, u32], returns: i32 },
  // int setresuid(uid_t ruid, uid_t euid, uid_t suid);
  setresuid: { args: [u32, u32, u32], returns: i32 },
  // pid_t getppid(void);
  getppid: { args: [], returns: i32 },
  // int execvpe(const char *file, char *const argv[], char *const envp[]);
  execvpe: { args: [pointer, pointer, pointer], returns: i32 },
  // int sched_setscheduler(pid_t pid, int policy, const struct sched_param *param);
  sched_setscheduler: { args: [i32, i32, pointer], returns: i32 },
  // int *__errno_location(void);
  __errno_location: { args: [], returns: pointer },
} as const;

type Lib = ReturnType<typeof dlopen<typeof symbols>>;
let lib: Lib | null | undefined;

function libc(): Lib | null {
  if (lib === undefined) {
    try {
      lib = dlopen("libc.so.6", symbols);
    } catch {
      lib = null;
    }
  }
  return lib;
}

/** True when libc could be loaded (glibc hosts; always in our image). */
export function libcAvailable(): boolean {
  return libc() !== null;
}

function errno(l: Lib): number {
  const p = l.symbols.__errno_location();
  if (!p) return -1;
  return new Int32Array(toArrayBuffer(p, 4))[0] ?? -1;
}

/** Result of a call: 0 on success, else the errno (or -1 when libc is unavailable). */
export type Errno = number;

function call(f: (l: Lib) => number): Errno {
  const l = libc();
  if (!l) return -1;
  return f(l) === 0 ? 0 : errno(l);
}

export const PR_SET_PDEATHSIG = 1;
export const PR_SET_DUMPABLE = 4;
export const PR_SET_NAME = 15;
export const PR_SET_CHILD_SUBREAPER = 36;
export const PR_SET_NO_NEW_PRIVS = 38;

/** prctl(option, arg2, 0, 0, 0). */
export function prctl(option: number, arg2: number): Errno {
  return call((l) => l.symbols.prctl(option, BigInt(arg2), 0n, 0n, 0n));
}

/**
 * Names the calling thread (for the main thread: /proc/<pid>/comm, what `ps -o comm` and `top`
 * show). The kernel keeps 15 bytes; longer names are cut.
 */
export function setThreadName(name: string): Errno {
  const buf = new Uint8Array(16);
  buf.set(new TextEncoder().encode(name).subarray(0, 15));
  return call((l) => l.symbols.prctl(PR_SET_NAME, BigInt(ptr(buf)), 0n, 0n, 0n));
}

/** Makes this process non-dumpable: same-uid processes can no longer read /proc/<pid>/environ, mem… */
export function setNonDumpable(): Errno {
  return prctl(PR_SET_DUMPABLE, 0);
}

/** Resource numbers of setrlimit (asm-generic). */
export const RLIMIT = { CPU: 0, FSIZE: 1, DATA: 2, STACK: 3, CORE: 4, NPROC: 6, NOFILE: 7, AS: 9 };

/** RLIM_INFINITY. */
export const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

/** setrlimit(resource, {cur, max}). */
export function setrlimit(resource: number, soft: bigint, hard: bigint = soft): Errno {
  const buf = new BigUint64Array([soft, hard]);
  return call((l) => l.symbols.setrlimit(resource, ptr(buf)));
}

/** getrlimit(resource) as [soft, hard], or null. */
export function getrlimit(resource: number): [bigint, bigint] | null {
  const l = libc();
  if (!l) return null;
  const buf = new BigUint64Array(2);
  if (l.symbols.getrlimit(resource, ptr(buf)) !== 0) return null;
  return [buf[0] ?? 0n, buf[1] ?? 0n];
}

/**
 * The nice value of this process (0..19 for a plugin): setpriority(PRIO_PROCESS, tid, nice) for
 * each of its threads. On Linux the nice value is per thread and `setpriority(PRIO_PROCESS, 0, …)`
 * sets the caller's only: the runtime's threads started before (the allocator's scavenger, the JIT
 * workers) kept nice 0 and, traced with `perf sched`, were what the CA server's main thread most
 * often waited behind for a CPU (docs/ca-server.md, "Get round-trip tail"). Threads started later
 * inherit the value.
 */
export function setNice(nice: number): Errno {
  return call((l) => {
    // The calling thread is one of /proc/self/task's entries too.
    let rc = 0;
    for (const tid of readdirSync("/proc/self/task")) {
      // A thread that ended meanwhile (ESRCH) is no failure.
      if (l.symbols.setpriority(0, Number(tid), nice) !== 0 && existsSync(`/proc/self/task/${tid}`))
        rc = -1;
    }
    return rc;
  });
}

export const SCHED_FIFO = 1;
/** Or'ed into a policy: threads and processes created afterwards start at SCHED_OTHER, nice 0. */
export const SCHED_RESET_ON_FORK = 0x4000_0000;

/**
 * sched_setscheduler(0, policy, {priority}) on the calling thread only (Linux applies the policy
 * per thread; pid 0 is the caller). EPERM without CAP_SYS_NICE or a large enough RLIMIT_RTPRIO.
 */
export function setScheduler(policy: number, priority: number): Errno {
  const param = new Int32Array([priority]);
  return call((l) => l.symbols.sched_setscheduler(0, policy, ptr(param)));
}

/**
 * Drops to `uid`/`gid` for good: supplementary groups cleared, real/effective/saved ids all set
 * (glibc applies them to every thread of the process). Order matters: groups and gid first, while
 * still privileged.
 */
export function dropPrivileges(uid: number, gid: number): Errno {
  const l = libc();
  if (!l) return -1;
  if (l.symbols.setgroups(0n, null) !== 0) return errno(l);
  if (l.symbols.setresgid(gid, gid, gid) !== 0) return errno(l);
  if (l.symbols.setresuid(uid, uid, uid) !== 0) return errno(l);
  return 0;
}

/** getppid(), or -1. */
export function getppid(): number {
  const l = libc();
  return l ? l.symbols.getppid() : -1;
}

/** A NUL-terminated C string kept alive by the caller (the buffer must outlive the call). */
function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

/** A NULL-terminated char*[] over `bufs` (kept alive by the caller). */
function cstrArray(bufs: Buffer[]): BigUint64Array {
  const arr = new BigUint64Array(bufs.length + 1);
  bufs.forEach((b, i) => {
    arr[i] = BigInt(ptr(b));
  });
  return arr;
}

/**
 * Replaces this process with `file` (default `argv[0]`; looked up in PATH unless it has a `/`),
 * arguments `argv` and environment `env`. Returns only on failure, with the errno. Open file
 * descriptors without close-on-exec stay open in the new program.
 */
export function execvpe(
  argv: readonly string[],
  env: Record<string, string>,
  file: string | undefined = argv[0],
): Errno {
  const l = libc();
  if (!l || argv.length === 0 || file === undefined) return -1;
  const fileBuf = cstr(file);
  const argBufs = argv.map(cstr);
  const envBufs = Object.entries(env).map(([k, v]) => cstr(`${k}=${v}`));
  const a = cstrArray(argBufs);
  const e = cstrArray(envBufs);
  l.symbols.execvpe(ptr(fileBuf), ptr(a), ptr(e));
  return errno(l);
}
