/**
 * Access decisions from a parsed access security file, with asLib's semantics: the rules of the
 * PV's group (DEFAULT when the group is not defined) are checked in order; a rule applies when the
 * PV's level is at most the rule's level, the user is in one of its UAGs (if any), the host in one
 * of its HAGs (if any) and its CALC (if any) is true with none of the inputs it reads INVALID or
 * missing; the highest access of the applying rules wins. User names compare exactly, host names
 * in lower case (or as IPv4 addresses when host names are not trusted: see `HostMode`).
 *
 * Cost: a decision is cached per (level, user, host) in its group, and the cache is dropped only
 * when an input change flips a rule's CALC outcome; a reload builds new groups. Protocol servers
 * cache the decision per channel on top, so a put or get pays one integer test.
 */
import { type Access, type AcfConfig, type AcfGroup, DEFAULT_ASG } from "./acf.ts";
import { CALC_INPUTS, type CalcProgram, calcIsTrue } from "./calc.ts";

/**
 * A decision: the access level in bits 0-1 (Access), TRAPWRITE in bit 2. Small integers so a
 * channel can hold one and a check is a comparison.
 */
export type Decision = number;
export const TRAP_WRITE = 4;

export function accessOf(d: Decision): Access {
  return (d & 3) as Access;
}
export function canRead(d: Decision): boolean {
  return (d & 3) >= 1;
}
export function canWrite(d: Decision): boolean {
  return (d & 3) >= 2;
}
/** The CA ACCESS_RIGHTS bits: 1 = read, 2 = write. */
export function caRights(d: Decision): number {
  const a = d & 3;
  return (a >= 1 ? 1 : 0) | (a >= 2 ? 2 : 0);
}

/**
 * How HAG entries match: `names` compares the client's host name (lower case) with the HAG's
 * names (lower case); `addresses` compares the client's peer IPv4 address with the HAG entries
 * resolved to addresses at load (asLib's asCheckClientIP).
 */
export type HostMode = "names" | "addresses";

/** Most cached decisions per group; a client sending endless distinct user names cannot grow it further. */
const MAX_CACHE = 4096;

interface CompiledRule {
  level: number;
  decision: Decision;
  /** Users of all the rule's UAGs together (one lookup per check); null = every user. */
  uags: ReadonlySet<string> | null;
  /** Hosts of all the rule's HAGs together; null = every host. */
  hags: ReadonlySet<string> | null;
  calc: CalcProgram | undefined;
  /** The CALC's last outcome (before the input-validity test). */
  result: boolean;
}

/** One access security group with its input values and decision cache. */
export class CompiledGroup {
  /** Input values A..L as the CALCs read them. */
  readonly values = new Float64Array(CALC_INPUTS);
  /** Bit i set while input i is bad (PV missing, not numeric, or INVALID severity). */
  bad: number;
  // Decisions by level, user and host: nested maps, so a hit allocates no key string.
  private readonly cache = [
    new Map<string, Map<string, Decision>>(),
    new Map<string, Map<string, Decision>>(),
  ];
  private cached = 0;

  constructor(
    readonly name: string,
    readonly inputs: readonly (string | undefined)[],
    private readonly rules: CompiledRule[],
  ) {
    let mask = 0;
    inputs.forEach((pv, i) => {
      if (pv !== undefined) mask |= 1 << i;
    });
    // Inputs start bad, as asCa's do until their first value arrives.
    this.bad = mask;
    for (const r of rules) {
      // asLib never evaluates a CALC that reads no input (its result stays false); we evaluate a
      // constant CALC once, so CALC("1") means what it says.
      if (r.calc && r.calc.inputsUsed === 0) r.result = calcIsTrue(r.calc.evaluate(this.values, 0));
    }
  }

  /**
   * Sets input `index` (undefined = bad). Returns true when a rule's outcome changed, i.e. decisions
   * of this group may have changed and clients must be re-evaluated.
   */
  setInput(index: number, value: number | undefined): boolean {
    const bit = 1 << index;
    const before = this.outcomes();
    if (value === undefined || Number.isNaN(value)) this.bad |= bit;
    else {
      this.bad &= ~bit;
      this.values[index] = value;
      for (const r of this.rules) {
        if (r.calc && r.calc.inputsUsed & bit) {
          let out: number;
          try {
            out = r.calc.evaluate(this.values, r.result ? 1 : 0);
          } catch {
            out = 0; // never expected (no operation throws), but a failing CALC grants nothing
          }
          r.result = calcIsTrue(out);
        }
      }
    }
    if (this.outcomes() === before) return false;
    this.clearCache();
    return true;
  }

  /** Whether each CALC rule currently applies, as a string so a change is one compare. */
  private outcomes(): string {
    let out = "";
    for (const r of this.rules) {
      if (r.calc) out += r.result && (this.bad & r.calc.inputsUsed) === 0 ? "1" : "0";
    }
    return out;
  }

  /** The decision for `user` on `host` (already in the form HostMode expects) at `level`. */
  decide(user: string, host: string, level: number): Decision {
    const byUser = this.cache[level === 0 ? 0 : 1] as Map<string, Map<string, Decision>>;
    let byHost = byUser.get(user);
    const hit = byHost?.get(host);
    if (hit !== undefined) return hit;
    const d = this.compute(user, host, level);
    if (this.cached >= MAX_CACHE) {
      this.clearCache();
      byHost = undefined;
    }
    if (byHost === undefined) {
      byHost = new Map();
      byUser.set(user, byHost);
    }
    byHost.set(host, d);
    this.cached++;
    return d;
  }

  private clearCache(): void {
    for (const m of this.cache) m.clear();
    this.cached = 0;
  }

  private compute(user: string, rawHost: string, level: number): Decision {
    // Host names compare in lower case (addresses are unaffected); done here, on a cache miss only.
    const host = rawHost.toLowerCase();
    let best: Decision = 0;
    for (const r of this.rules) {
      if ((best & 3) === 3) break;
      if ((r.decision & 3) <= (best & 3)) continue;
      if (level > r.level) continue;
      if (r.uags !== null && !r.uags.has(user)) continue;
      if (r.hags !== null && !r.hags.has(host)) continue;
      if (r.calc && (!r.result || (this.bad & r.calc.inputsUsed) !== 0)) continue;
      best = r.decision;
    }
    return best;
  }
}

/** A whole file compiled for decisions. */
export class CompiledAcf {
  readonly groups = new Map<string, CompiledGroup>();

  /**
   * `hostAddress` maps a HAG entry to the address it stands for in "addresses" mode (resolved by
   * the caller, since resolving is I/O); entries it does not resolve never match.
   */
  constructor(
    readonly config: AcfConfig,
    readonly hostMode: HostMode = "names",
    hostAddress: ReadonlyMap<string, string> = new Map(),
  ) {
    const users = new Map<string, ReadonlySet<string>>();
    for (const [name, list] of config.uags) users.set(name, new Set(list));
    const hosts = new Map<string, ReadonlySet<string>>();
    for (const [name, list] of config.hags) {
      const set = new Set<string>();
      for (const h of list) {
        if (hostMode === "names") set.add(h.toLowerCase());
        else {
          const ip = hostAddress.get(h);
          if (ip !== undefined) set.add(ip);
        }
      }
      hosts.set(name, set);
    }
    for (const g of config.asgs.values()) {
      this.groups.set(g.name, compileGroup(g, users, hosts));
    }
  }

  /** The group a PV in `asg` belongs to: DEFAULT when `asg` is not defined (as asLib does). */
  group(asg: string | undefined): CompiledGroup {
    return (
      (asg !== undefined ? this.groups.get(asg) : undefined) ??
      (this.groups.get(DEFAULT_ASG) as CompiledGroup)
    );
  }

  decide(asg: string | undefined, user: string, host: string, level = 0): Decision {
    return this.group(asg).decide(user, host, level);
  }
}

function compileGroup(
  g: AcfGroup,
  users: ReadonlyMap<string, ReadonlySet<string>>,
  hosts: ReadonlyMap<string, ReadonlySet<string>>,
): CompiledGroup {
  const rules: CompiledRule[] = g.rules.map((r) => ({
    level: r.level,
    decision: r.access | (r.trapWrite ? TRAP_WRITE : 0),
    uags: r.uags.length > 0 ? union(r.uags.map((n) => users.get(n))) : null,
    hags: r.hags.length > 0 ? union(r.hags.map((n) => hosts.get(n))) : null,
    calc: r.calc,
    result: false,
  }));
  return new CompiledGroup(g.name, g.inputs, rules);
}

function union(sets: (ReadonlySet<string> | undefined)[]): ReadonlySet<string> {
  if (sets.length === 1 && sets[0] !== undefined) return sets[0];
  const out = new Set<string>();
  for (const s of sets) for (const x of s ?? []) out.add(x);
  return out;
}
