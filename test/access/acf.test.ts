import { describe, expect, test } from "bun:test";
import { Access, AcfError, decodeAcf, MAX_ACF_BYTES, parseAcf } from "../../src/access/acf.ts";

function errorOf(text: string): AcfError {
  try {
    parseAcf(text, "t.acf");
  } catch (e) {
    if (e instanceof AcfError) return e;
    throw e;
  }
  throw new Error("parsed");
}

const GUIDE_EXAMPLE = `
UAG(op) {op1,op2,superguy}
UAG(opSup) {superguy}
UAG(linac) {waw,nassiri,grelick,berg,fuja,gsm}
UAG(linacSup) {gsm}
UAG(appDev) {nda,kko}
HAG(icr) {silver,phebos,gaea}
HAG(cr) {mars,hera,gold}
HAG(ioc) {ioclic1,ioclic2,ioclid1,ioclid2,ioclid3,ioclid4,ioclid5}
ASG(DEFAULT) {
    INPA(LI:OPSTATE)
    INPB(LI:lev1permit)
    RULE(0,WRITE) {
        UAG(op)
        HAG(icr,cr)
        CALC("A=1")
    }
    RULE(0,WRITE) {
        UAG(op,linac,appDev)
        HAG(icr,cr)
        CALC("A=0")
    }
    RULE(1,WRITE) {
        UAG(opSup,linacSup,appDev)
        CALC("B=1")
    }
    RULE(1,READ)
    RULE(1,WRITE) {
        HAG(ioc)
    }
}
ASG(permit) {
    RULE(0,WRITE) {
        UAG(opSup,linacSup,appDev)
    }
    RULE(1,READ)
    RULE(1,WRITE,TRAPWRITE) {
        HAG(ioc)
    }
}
`;

describe("access security file parser", () => {
  test("parses the Application Developer's Guide example", () => {
    const cfg = parseAcf(GUIDE_EXAMPLE);
    expect([...cfg.uags.keys()]).toEqual(["op", "opSup", "linac", "linacSup", "appDev"]);
    expect(cfg.uags.get("op")).toEqual(["op1", "op2", "superguy"]);
    expect(cfg.hags.get("cr")).toEqual(["mars", "hera", "gold"]);
    const def = cfg.asgs.get("DEFAULT");
    expect(def?.inputs[0]).toBe("LI:OPSTATE");
    expect(def?.inputs[1]).toBe("LI:lev1permit");
    expect(def?.rules.length).toBe(5);
    expect(def?.rules[0]).toMatchObject({
      level: 0,
      access: Access.WRITE,
      uags: ["op"],
      hags: ["icr", "cr"],
    });
    expect(def?.rules[0]?.calc?.source).toBe("A=1");
    expect(def?.rules[3]).toMatchObject({
      level: 1,
      access: Access.READ,
      uags: [],
      hags: [],
      calc: undefined,
    });
    const permit = cfg.asgs.get("permit");
    expect(permit?.rules[2]?.trapWrite).toBe(true);
    expect(permit?.rules[0]?.trapWrite).toBe(false);
    expect(cfg.warnings).toEqual([]);
  });

  test("DEFAULT exists even when the file does not define it; groups may have no body", () => {
    const cfg = parseAcf("UAG(u)\nHAG(h)\nASG(g)");
    expect(cfg.asgs.get("DEFAULT")?.rules).toEqual([]);
    expect(cfg.uags.get("u")).toEqual([]);
    expect(cfg.asgs.get("g")?.rules).toEqual([]);
  });

  test("quoted strings, comments, RPC, NONE, unquoted names with EPICS punctuation", () => {
    const cfg = parseAcf(`# a comment
UAG("ops team") {"alice smith", bob.jones, "x#y"} # trailing comment
HAG(h) {"Console-1.example.org", 10.0.0.1}
ASG("ro") { RULE(1, "READ") }
ASG(rpc) { RULE(0, RPC) RULE(1, NONE, NOTRAPWRITE) { UAG("ops team") } }
ASG(esc) { INPA("A:B.VAL") RULE(1, WRITE) { CALC("A = 1") } }
`);
    expect(cfg.uags.get("ops team")).toEqual(["alice smith", "bob.jones", "x#y"]);
    expect(cfg.hags.get("h")).toEqual(["Console-1.example.org", "10.0.0.1"]);
    expect(cfg.asgs.get("rpc")?.rules[0]?.access).toBe(Access.RPC);
    expect(cfg.asgs.get("rpc")?.rules[1]?.access).toBe(Access.NONE);
    // .VAL is the PV itself.
    expect(cfg.asgs.get("esc")?.inputs[0]).toBe("A:B");
  });

  test("backslash escapes in quoted strings are kept as written, as asLib keeps them", () => {
    const cfg = parseAcf('UAG(u) {"a\\"b"}');
    expect(cfg.uags.get("u")).toEqual(['a\\"b']);
  });

  test("asLib's leniencies: DEFAULT named again while empty, levels above 1 (with a warning)", () => {
    const cfg = parseAcf("ASG(DEFAULT)\nASG(DEFAULT) { RULE(5, READ) }");
    expect(cfg.asgs.get("DEFAULT")?.rules[0]?.level).toBe(1);
    expect(cfg.warnings[0]).toContain("access level 5 acts as 1");
  });

  test("warnings: a CALC input without INP, a user listed twice", () => {
    const cfg = parseAcf('UAG(u) {a, a}\nASG(g) { RULE(1, WRITE) { CALC("B=1") } }');
    expect(cfg.warnings.length).toBe(2);
    expect(cfg.warnings[0]).toContain("listed twice");
    expect(cfg.warnings[1]).toContain("no INPB");
  });

  test("syntax errors carry line and column", () => {
    const cases: [string, number, number, string][] = [
      ["", 1, 1, "empty access security file"],
      ["# only a comment\n\n", 3, 1, "empty access security file"],
      ["UAG(u) {a,}", 1, 11, "expected a user name"],
      ["UAG(u) {}", 1, 9, "expected a user name"],
      ["UAG(u {a}", 1, 7, "expected ')'"],
      ["ASG(g) {\n  RULE(1, WRIT)\n}", 2, 11, "access rights must be NONE, READ, WRITE or RPC"],
      ["ASG(g) {\n  RULE(x, READ)\n}", 2, 8, "expected an access level"],
      ["ASG(g) { RULE(1, READ, TRAP) }", 1, 24, "TRAPWRITE or NOTRAPWRITE"],
      ["ASG(g) { RULE(1, READ) { UAG(nobody) } }", 1, 30, "no user access group named 'nobody'"],
      ["ASG(g) { RULE(1, READ) { HAG(h) } }\nHAG(h) {x}", 1, 30, "no host access group named 'h'"],
      ["UAG(u) {a}\nUAG(u) {b}", 2, 5, "duplicate user access group 'u'"],
      ["ASG(g)\nASG(g)", 2, 5, "duplicate access security group 'g'"],
      [
        "ASG(DEFAULT) {RULE(1,READ)}\nASG(DEFAULT)",
        2,
        5,
        "duplicate access security group 'DEFAULT'",
      ],
      ["ASG(g) { INPA(x) INPA(y) }", 1, 18, "INPA given twice"],
      ["ASG(g) { INPM(x) }", 1, 10, "expected INPx or RULE"],
      ["ASG(g) { }", 1, 10, "expected INPx or RULE"],
      ['UAG(u) {"abc\n}', 1, 9, "newline in quoted string"],
      ['UAG(u) {"abc', 1, 9, "end of file in quoted string"],
      ["UAG(u) {a}\n  @", 2, 3, "invalid character '@'"],
      ["UAG(u) {a\u0000}", 1, 10, "invalid character 0x00"],
      ["uag(u)", 1, 1, "expected UAG, HAG or ASG, got 'uag'"],
      ['ASG(g) { RULE(1, READ) { CALC("A=1") CALC("B") } }', 1, 38, "CALC given twice"],
      ["ASG(g) { RULE(1, READ) { FOO } }", 1, 26, "expected UAG, HAG or CALC"],
      ["ASG(g) { RULE(1, READ) ", 1, 24, "expected INPx or RULE, got end of file"],
    ];
    for (const [text, line, column, msg] of cases) {
      const e = errorOf(text);
      expect({ text, line: e.line, column: e.column }).toEqual({ text, line, column });
      expect(e.message).toContain(msg);
      expect(e.message.startsWith(`t.acf:${line}:${column}: `)).toBe(true);
    }
  });

  test("a bad CALC is reported at the column of the problem inside the string", () => {
    const e = errorOf('ASG(g) {\n  INPA(x)\n  RULE(1, WRITE) { CALC("A = = 1") }\n}');
    expect(e.line).toBe(3);
    // CALC( starts at col 20, the string's quote at 25, its text at 26; the second '=' is offset 4.
    expect(e.column).toBe(30);
    expect(e.message).toContain('CALC "A = = 1"');
  });

  test("binary and non-UTF-8 input is refused with a position", () => {
    const bin = new Uint8Array([0x55, 0x41, 0x47, 0x28, 0x75, 0x29, 0x0a, 0x41, 0xff, 0xfe]);
    expect(() => decodeAcf(bin, "b.acf")).toThrow(AcfError);
    try {
      decodeAcf(bin, "b.acf");
    } catch (e) {
      expect((e as AcfError).line).toBe(2);
      expect((e as AcfError).column).toBe(2);
    }
    // Random bytes that happen to be valid UTF-8 still fail in the lexer with a position.
    const e = errorOf("UAG(u) {a}\u0001\u0002");
    expect(e.message).toContain("invalid character 0x01");
  });

  test("hostile sizes: huge files and names are refused, many rules are fine", () => {
    expect(() => parseAcf("#".repeat(MAX_ACF_BYTES + 1))).toThrow("larger than");
    expect(() => decodeAcf(new Uint8Array(MAX_ACF_BYTES + 1))).toThrow("larger than");
    expect(errorOf(`UAG(${"x".repeat(5000)})`).message).toContain("longer than");
    expect(errorOf(`UAG(u) {"${"x".repeat(5000)}"}`).message).toContain("longer than");
    const users = Array.from({ length: 20_000 }, (_, i) => `user${i}`).join(",");
    const rules = Array.from({ length: 5000 }, () => "RULE(1, WRITE) { UAG(u) }").join("\n");
    const cfg = parseAcf(`UAG(u) {${users}}\nASG(g) {\n${rules}\n}`);
    expect(cfg.uags.get("u")?.length).toBe(20_000);
    expect(cfg.asgs.get("g")?.rules.length).toBe(5000);
    // Deep CALC nesting inside a file is refused, not a stack overflow.
    const deep = `ASG(g) { RULE(1, READ) { CALC("${"(".repeat(1000)}1${")".repeat(1000)}") } }`;
    expect(errorOf(deep).message).toContain("nested deeper");
  });

  test("random garbage never escapes as anything but AcfError", () => {
    let seed = 12345;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const alphabet = 'UAGHSRULECINPAL(){},"#\\\n 01WRITEREADNONE:._-';
    for (let n = 0; n < 2000; n++) {
      let s = "";
      const len = rnd() % 80;
      for (let i = 0; i < len; i++) s += alphabet[rnd() % alphabet.length];
      try {
        parseAcf(s);
      } catch (e) {
        expect(e).toBeInstanceOf(AcfError);
      }
    }
  });
});
