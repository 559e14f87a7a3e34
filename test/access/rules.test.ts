import { describe, expect, test } from "bun:test";
import { Access, parseAcf } from "../../src/access/acf.ts";
import { accessOf, CompiledAcf, caRights, TRAP_WRITE } from "../../src/access/rules.ts";

const HOSTS = `
HAG(foo) {localhost}
ASG(DEFAULT) {RULE(0, NONE)}
ASG(ro) {RULE(0, NONE) RULE(1, READ) {HAG(foo)}}
ASG(rw) {RULE(1, WRITE) {HAG(foo)}}
`;

describe("access decisions", () => {
  test("host names match case-insensitively; unknown groups fall back to DEFAULT", () => {
    const acf = new CompiledAcf(parseAcf(HOSTS), "names");
    const d = (asg: string, host: string) => caRights(acf.decide(asg, "testing", host, 0));
    expect([
      d("invalid", "localhost"),
      d("DEFAULT", "localhost"),
      d("ro", "localhost"),
      d("rw", "localhost"),
    ]).toEqual([0, 0, 1, 3]);
    expect(d("rw", "LocalHost")).toBe(3);
    expect([d("ro", "127.0.0.1"), d("rw", "127.0.0.1")]).toEqual([0, 0]);
    expect(d("rw", "guaranteed.invalid.")).toBe(0);
  });

  test("address mode matches the resolved HAG entries, never the names", () => {
    const acf = new CompiledAcf(
      parseAcf(HOSTS),
      "addresses",
      new Map([["localhost", "127.0.0.1"]]),
    );
    const d = (asg: string, host: string) => caRights(acf.decide(asg, "testing", host, 0));
    expect([d("ro", "localhost"), d("rw", "localhost")]).toEqual([0, 0]);
    expect([d("ro", "127.0.0.1"), d("rw", "127.0.0.1")]).toEqual([1, 3]);
    // An entry that did not resolve matches nothing.
    const none = new CompiledAcf(parseAcf(HOSTS), "addresses", new Map());
    expect(caRights(none.decide("rw", "testing", "127.0.0.1"))).toBe(0);
  });

  test("users match exactly; the highest access of applying rules wins", () => {
    const acf = new CompiledAcf(
      parseAcf(`UAG(ops) {operator, Alice}
ASG(g) { RULE(1, READ) RULE(1, WRITE) { UAG(ops) } RULE(1, READ) { UAG(ops) } }`),
    );
    expect(accessOf(acf.decide("g", "operator", "h"))).toBe(Access.WRITE);
    expect(accessOf(acf.decide("g", "alice", "h"))).toBe(Access.READ);
    expect(accessOf(acf.decide("g", "Alice", "h"))).toBe(Access.WRITE);
    expect(accessOf(acf.decide("g", "", "h"))).toBe(Access.READ);
  });

  test("UAG and HAG must both match when both are given; lists are alternatives", () => {
    const acf = new CompiledAcf(
      parseAcf(`UAG(a) {u1} UAG(b) {u2} HAG(x) {h1} HAG(y) {h2}
ASG(g) { RULE(1, WRITE) { UAG(a, b) HAG(x, y) } }`),
    );
    const w = (u: string, h: string) => caRights(acf.decide("g", u, h));
    expect([w("u1", "h1"), w("u2", "h2"), w("u1", "h3"), w("u3", "h1")]).toEqual([3, 3, 0, 0]);
  });

  test("levels: a level-0 rule grants level-0 PVs only, a level-1 rule both", () => {
    const acf = new CompiledAcf(parseAcf("ASG(g) { RULE(0, WRITE) RULE(1, READ) }"));
    expect(accessOf(acf.decide("g", "u", "h", 0))).toBe(Access.WRITE);
    expect(accessOf(acf.decide("g", "u", "h", 1))).toBe(Access.READ);
  });

  test("RPC implies write and read; TRAPWRITE is reported with the rule that decided", () => {
    const acf = new CompiledAcf(
      parseAcf("UAG(r) {rpcuser}\nASG(g) { RULE(1, WRITE, TRAPWRITE) RULE(1, RPC) { UAG(r) } }"),
    );
    const plain = acf.decide("g", "someone", "h");
    expect(accessOf(plain)).toBe(Access.WRITE);
    expect(plain & TRAP_WRITE).toBe(TRAP_WRITE);
    const rpc = acf.decide("g", "rpcuser", "h");
    expect(accessOf(rpc)).toBe(Access.RPC);
    expect(caRights(rpc)).toBe(3);
    expect(rpc & TRAP_WRITE).toBe(0);
  });

  test("CALC rules apply only while true and while their inputs are good", () => {
    const acf = new CompiledAcf(
      parseAcf(`ASG(g) { INPA(MODE) INPB(OTHER)
  RULE(1, READ)
  RULE(1, WRITE) { CALC("A=1") }
}`),
    );
    const g = acf.group("g");
    const w = () => accessOf(g.decide("u", "h", 0));
    expect(w()).toBe(Access.READ); // inputs start bad
    expect(g.setInput(0, 1)).toBe(true);
    expect(w()).toBe(Access.WRITE);
    expect(g.setInput(0, 1)).toBe(false); // same outcome: no change reported
    expect(g.setInput(1, 7)).toBe(false); // B is not read by the rule
    expect(g.setInput(0, 0)).toBe(true);
    expect(w()).toBe(Access.READ);
    g.setInput(0, 1);
    expect(w()).toBe(Access.WRITE);
    expect(g.setInput(0, undefined)).toBe(true); // disconnected / INVALID: rule off
    expect(w()).toBe(Access.READ);
    expect(g.setInput(0, Number.NaN)).toBe(false); // still bad
  });

  test("a CALC that reads no input is evaluated once at load", () => {
    const acf = new CompiledAcf(
      parseAcf(
        'ASG(on) { RULE(1, WRITE) { CALC("1") } } ASG(off) { RULE(1, WRITE) { CALC("0") } }',
      ),
    );
    expect(accessOf(acf.decide("on", "u", "h"))).toBe(Access.WRITE);
    expect(accessOf(acf.decide("off", "u", "h"))).toBe(Access.NONE);
  });

  test("the decision cache stays bounded under endless distinct user names", () => {
    const acf = new CompiledAcf(
      parseAcf("UAG(u) {good}\nASG(g) { RULE(1, READ) RULE(1, WRITE) { UAG(u) } }"),
    );
    for (let i = 0; i < 20_000; i++) acf.decide("g", `user${i}`, "h");
    expect(accessOf(acf.decide("g", "good", "h"))).toBe(Access.WRITE);
    expect(accessOf(acf.decide("g", "user5", "h"))).toBe(Access.READ);
  });
});

describe("operator cap on plugin groups", () => {
  test("groupsNotAllowed lists what the cap refuses; null allows any", async () => {
    const { groupsNotAllowed, groupsNotAllowedMessage } = await import(
      "../../src/access/groups.ts"
    );
    expect(groupsNotAllowed(["A", undefined, "B"], null)).toEqual([]);
    expect(groupsNotAllowed(["A", undefined, "B", "C", "C"], ["A"])).toEqual(["B", "C"]);
    expect(groupsNotAllowed([undefined], [])).toEqual([]);
    expect(groupsNotAllowedMessage(["OPEN"], ["CTRL", "DEFAULT"])).toBe(
      "access security group OPEN not allowed for plugins (access_groups in the server config allows: CTRL, DEFAULT)",
    );
  });
});
