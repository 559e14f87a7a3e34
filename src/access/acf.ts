/**
 * Parser of EPICS access security files (the grammar of EPICS Base's asLib, read from asLib.y and
 * the Application Developer's Guide; the code is ours):
 *
 *   UAG(name) [{ user [, user …] }]
 *   HAG(name) [{ host [, host …] }]
 *   ASG(name) [{
 *     [INPx(pvname) …]                                x = A..L
 *     RULE(level, NONE|READ|WRITE|RPC [, TRAPWRITE|NOTRAPWRITE]) [{
 *       [UAG(name [, name …])] [HAG(name [, name …])] [CALC("expression")]
 *     }] …
 *   }]
 *
 * Checks asLib makes at load are made here too, each with the line and column: duplicate group
 * names, a UAG/HAG used in a rule before it is defined, bad access names and options, a CALC that
 * does not compile. The group DEFAULT always exists (empty: no access) and may be defined once.
 * RPC is the newest access level (pvAccess RPC); it implies WRITE, which implies READ.
 */
import { CalcError, type CalcProgram, compileCalc } from "./calc.ts";
import { AcfError, AcfLexer, type Token, type TokenKind } from "./lexer.ts";

export { AcfError } from "./lexer.ts";

/** Access levels in increasing order; each implies the ones below. */
export const Access = { NONE: 0, READ: 1, WRITE: 2, RPC: 3 } as const;
export type Access = (typeof Access)[keyof typeof Access];
const ACCESS_NAMES: Record<string, Access> = Access;

/** Largest access security file accepted (bytes): far above any real file, small enough to parse fast. */
export const MAX_ACF_BYTES = 4 * 1024 * 1024;

export const DEFAULT_ASG = "DEFAULT";

export interface AcfRule {
  /** 0 or 1: a level-1 rule applies to level-0 and level-1 PVs, a level-0 rule to level-0 PVs. */
  level: number;
  access: Access;
  trapWrite: boolean;
  /** Names of the UAGs the user must be in (any); empty = every user. */
  uags: string[];
  /** Names of the HAGs the host must be in (any); empty = every host. */
  hags: string[];
  calc: CalcProgram | undefined;
  line: number;
  column: number;
}

export interface AcfGroup {
  name: string;
  /** PV name per input index (A=0 … L=11). */
  inputs: (string | undefined)[];
  rules: AcfRule[];
  line: number;
}

export interface AcfConfig {
  uags: Map<string, string[]>;
  hags: Map<string, string[]>;
  asgs: Map<string, AcfGroup>;
  /** Things asLib accepts but that are probably mistakes (e.g. CALC reading an input with no INP). */
  warnings: string[];
}

class AcfParser {
  private tok: Token;
  private readonly cfg: AcfConfig = {
    uags: new Map(),
    hags: new Map(),
    asgs: new Map(),
    warnings: [],
  };

  constructor(
    private readonly lex: AcfLexer,
    private readonly file: string,
  ) {
    this.tok = lex.next();
    this.cfg.asgs.set(DEFAULT_ASG, { name: DEFAULT_ASG, inputs: [], rules: [], line: 0 });
  }

  parse(): AcfConfig {
    if (this.tok.kind === "eof") throw this.err("empty access security file: no UAG, HAG or ASG");
    while (this.peek() !== "eof") {
      const t = this.tok;
      if (t.kind === "UAG" || t.kind === "HAG") this.listGroup(t.kind);
      else if (t.kind === "ASG") this.asg();
      else throw this.err(`expected UAG, HAG or ASG, got ${this.show(t)}`);
    }
    return this.cfg;
  }

  private err(reason: string, at: Token = this.tok): AcfError {
    return new AcfError(reason, at.line, at.column, this.file);
  }

  private show(t: Token): string {
    if (t.kind === "eof") return "end of file";
    if (t.kind === "string" || t.kind === "int") return `'${t.text}'`;
    return t.kind === "INP" ? `INP${t.text}` : `'${t.kind}'`;
  }

  /** The current token's kind (a method, so TypeScript does not narrow it across advance()). */
  private peek(): TokenKind {
    return this.tok.kind;
  }

  private advance(): Token {
    const t = this.tok;
    this.tok = this.lex.next();
    return t;
  }

  private expect(kind: TokenKind, what = `'${kind}'`): Token {
    if (this.tok.kind !== kind) throw this.err(`expected ${what}, got ${this.show(this.tok)}`);
    return this.advance();
  }

  /** A name: quoted or unquoted string, or digits (asLib wants a string; we take both). */
  private name(what: string): Token {
    if (this.tok.kind !== "string" && this.tok.kind !== "int") {
      throw this.err(`expected ${what}, got ${this.show(this.tok)}`);
    }
    return this.advance();
  }

  /** Comma-separated names up to (and consuming) `close`. */
  private names(what: string, close: TokenKind): Token[] {
    const out = [this.name(what)];
    while (this.tok.kind === ",") {
      this.advance();
      out.push(this.name(what));
    }
    this.expect(close, `',' or '${close}'`);
    return out;
  }

  private head(what: string): Token {
    this.expect("(");
    const n = this.name(what);
    this.expect(")");
    return n;
  }

  private listGroup(kind: "UAG" | "HAG"): void {
    this.advance();
    const label = kind === "UAG" ? "user access group" : "host access group";
    const nameTok = this.head(`${label} name`);
    const map = kind === "UAG" ? this.cfg.uags : this.cfg.hags;
    if (map.has(nameTok.text)) {
      throw this.err(`duplicate ${label} '${nameTok.text}'`, nameTok);
    }
    const members: string[] = [];
    map.set(nameTok.text, members);
    if (this.tok.kind !== "{") return;
    this.advance();
    const what = kind === "UAG" ? "a user name" : "a host name";
    const seen = new Set<string>();
    for (const m of this.names(what, "}")) {
      if (seen.has(m.text)) {
        this.cfg.warnings.push(
          `${m.line}:${m.column}: '${m.text}' listed twice in ${kind} ${nameTok.text}`,
        );
      } else {
        seen.add(m.text);
        members.push(m.text);
      }
    }
  }

  private asg(): void {
    this.advance();
    const nameTok = this.head("access security group name");
    const name = nameTok.text;
    const existing = this.cfg.asgs.get(name);
    // asLib lets DEFAULT be named again while it is still empty (it is created implicitly).
    const reopen =
      name === DEFAULT_ASG && existing?.rules.length === 0 && existing.inputs.length === 0;
    if (existing && !reopen) throw this.err(`duplicate access security group '${name}'`, nameTok);
    const group: AcfGroup = existing ?? { name, inputs: [], rules: [], line: nameTok.line };
    group.line = nameTok.line;
    this.cfg.asgs.set(name, group);
    if (this.tok.kind !== "{") return;
    this.advance();
    do {
      if (this.peek() === "INP") this.inp(group);
      else if (this.peek() === "RULE") this.rule(group);
      else throw this.err(`expected INPx or RULE, got ${this.show(this.tok)}`);
    } while (this.peek() !== "}");
    this.advance();
    this.checkInputs(group);
  }

  private inp(group: AcfGroup): void {
    const t = this.advance();
    const idx = t.text.charCodeAt(0) - 65;
    const pv = this.head("a PV name");
    if (group.inputs[idx] !== undefined)
      throw this.err(`INP${t.text} given twice in ASG ${group.name}`, t);
    group.inputs[idx] = pv.text.replace(/\.VAL$/, "");
  }

  private rule(group: AcfGroup): void {
    const ruleTok = this.advance();
    this.expect("(");
    const levelTok = this.expect("int", "an access level 0 or 1");
    const level = Math.min(Number(levelTok.text), 1);
    if (Number(levelTok.text) > 1) {
      // asLib accepts any level (a PV's level is 0 or 1, so it acts as 1); keep that, but say so.
      this.cfg.warnings.push(
        `${levelTok.line}:${levelTok.column}: access level ${levelTok.text} acts as 1`,
      );
    }
    this.expect(",");
    const accessTok = this.name("NONE, READ, WRITE or RPC");
    const access = Object.hasOwn(ACCESS_NAMES, accessTok.text)
      ? ACCESS_NAMES[accessTok.text]
      : undefined;
    if (access === undefined) {
      throw this.err(
        `access rights must be NONE, READ, WRITE or RPC, got '${accessTok.text}'`,
        accessTok,
      );
    }
    let trapWrite = false;
    if (this.tok.kind === ",") {
      this.advance();
      const opt = this.name("TRAPWRITE or NOTRAPWRITE");
      if (opt.text !== "TRAPWRITE" && opt.text !== "NOTRAPWRITE") {
        throw this.err(`log option must be TRAPWRITE or NOTRAPWRITE, got '${opt.text}'`, opt);
      }
      trapWrite = opt.text === "TRAPWRITE";
    }
    this.expect(")", "',' or ')'");
    const rule: AcfRule = {
      level,
      access,
      trapWrite,
      uags: [],
      hags: [],
      calc: undefined,
      line: ruleTok.line,
      column: ruleTok.column,
    };
    group.rules.push(rule);
    if (this.tok.kind === "{") this.ruleBody(rule);
  }

  private ruleBody(rule: AcfRule): void {
    this.advance();
    do {
      const t = this.tok;
      if (t.kind === "UAG" || t.kind === "HAG") {
        this.advance();
        this.expect("(");
        const map = t.kind === "UAG" ? this.cfg.uags : this.cfg.hags;
        const list = t.kind === "UAG" ? rule.uags : rule.hags;
        for (const n of this.names(`a ${t.kind} name`, ")")) {
          if (!map.has(n.text)) {
            const label = t.kind === "UAG" ? "user" : "host";
            throw this.err(
              `no ${label} access group named '${n.text}' defined before this rule`,
              n,
            );
          }
          list.push(n.text);
        }
      } else if (t.kind === "CALC") {
        this.advance();
        this.expect("(");
        rule.calc = this.calc(t, rule);
        this.expect(")");
      } else throw this.err(`expected UAG, HAG or CALC, got ${this.show(t)}`);
    } while (this.peek() !== "}");
    this.advance();
  }

  private calc(calcTok: Token, rule: AcfRule): CalcProgram {
    if (rule.calc) throw this.err("CALC given twice in one RULE", calcTok);
    const expr = this.name("a CALC expression");
    try {
      return compileCalc(expr.text);
    } catch (e) {
      if (!(e instanceof CalcError)) throw e;
      // The expression's offset maps to a column when it sits on one line (it always does: strings
      // cannot span lines); +1 skips the opening quote.
      const col = expr.column + (expr.quoted ? 1 : 0) + e.offset;
      throw new AcfError(
        `CALC "${expr.text.slice(0, 80)}": ${e.message}`,
        expr.line,
        col,
        this.file,
      );
    }
  }

  private checkInputs(group: AcfGroup): void {
    for (const r of group.rules) {
      if (!r.calc) continue;
      for (let i = 0; i < 12; i++) {
        if (r.calc.inputsUsed & (1 << i) && group.inputs[i] === undefined) {
          const letter = String.fromCharCode(65 + i);
          this.cfg.warnings.push(
            `${r.line}:${r.column}: CALC in ASG ${group.name} reads ${letter} but there is no INP${letter}: it reads 0`,
          );
        }
      }
    }
  }
}

/**
 * Parses the text of an access security file; throws AcfError (with line and column) at the first
 * problem. `file` only labels errors.
 */
export function parseAcf(text: string, file = ""): AcfConfig {
  if (text.length > MAX_ACF_BYTES) {
    throw new AcfError(`file larger than ${MAX_ACF_BYTES} bytes`, 1, 1, file);
  }
  return new AcfParser(new AcfLexer(text, file), file).parse();
}

/** Decodes file bytes strictly: an access security file that is not UTF-8 text is refused. */
export function decodeAcf(bytes: Uint8Array, file = ""): string {
  if (bytes.length > MAX_ACF_BYTES) {
    throw new AcfError(`file larger than ${MAX_ACF_BYTES} bytes`, 1, 1, file);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // Locate the first undecodable sequence through the lossy decoding's replacement character.
    const lossy = new TextDecoder("utf-8").decode(bytes);
    const at = lossy.indexOf("\uFFFD");
    const before = lossy.slice(0, Math.max(0, at));
    const line = before.split("\n").length;
    const column = at - before.lastIndexOf("\n");
    throw new AcfError("not UTF-8 text", line, column, file);
  }
}
