/**
 * Recursive-descent parser of the expression language into an AST. Precedence follows Python:
 * `x if c else y` < `or` < `and` < `not` < comparisons < `+ -` < `* / %` < unary `- +` < call.
 * Every Python construct outside the language is refused by name with its position, and the size
 * of what is parsed is bounded (source length, nesting depth, node count) so a hostile config
 * cannot exhaust the stack or the heap.
 */
import { ExprError } from "./errors.ts";
import { REFUSED_KEYWORDS, type Token, tokenize } from "./lexer.ts";

/** Longest accepted expression source (characters). */
export const MAX_SOURCE = 4096;
/** Deepest accepted nesting of sub-expressions. */
export const MAX_DEPTH = 64;
/** Most AST nodes in one expression. */
export const MAX_NODES = 2000;

export type Node =
  | { t: "lit"; v: number | string | boolean | null; pos: number }
  | { t: "name"; id: string; pos: number }
  | { t: "seq"; items: Node[]; tuple: boolean; pos: number }
  | { t: "unary"; op: "-" | "+" | "not"; arg: Node; pos: number }
  | { t: "bin"; op: "+" | "-" | "*" | "/" | "%"; left: Node; right: Node; pos: number }
  | { t: "cmp"; ops: CmpOp[]; operands: Node[]; pos: number }
  | { t: "bool"; op: "and" | "or"; values: Node[]; pos: number }
  | { t: "if"; test: Node; body: Node; orelse: Node; pos: number }
  | { t: "call"; fn: string; args: Node[]; kwargs: { name: string; value: Node }[]; pos: number };

export type CmpOp = "==" | "!=" | "<" | "<=" | ">" | ">=";

const CMP_OPS = new Set(["==", "!=", "<", "<=", ">", ">="]);

/** Operators that exist in Python but are refused, with the advice given. */
const REFUSED_OPS: Record<string, string> = {
  "**": "the power operator '**' is not allowed (use pow(a, b))",
  "//": "floor division '//' is not allowed (use floor(a / b))",
  "&": "bitwise operator '&' is not allowed (use 'and')",
  "|": "bitwise operator '|' is not allowed (use 'or')",
  "^": "bitwise operator '^' is not allowed",
  "~": "bitwise operator '~' is not allowed (use 'not')",
  "<<": "shift operator '<<' is not allowed",
  ">>": "shift operator '>>' is not allowed",
  "@": "matrix operator '@' is not allowed",
  ".": "attribute access '.' is not allowed",
  "[": "subscripts '[...]' are not allowed (use last(v, n) or the buffer functions)",
  "{": "dict and set literals are not allowed",
  ":=": "assignment expressions ':=' are not allowed",
  "=": "assignment is not allowed (use '==' to compare)",
  "...": "'...' is not allowed",
  ";": "only one expression is allowed",
};

class Parser {
  private i = 0;
  private depth = 0;
  private nodes = 0;
  constructor(private readonly toks: Token[]) {}

  private peek(): Token {
    return this.toks[this.i] as Token;
  }
  private next(): Token {
    return this.toks[this.i++] as Token;
  }
  private isOp(text: string): boolean {
    const t = this.peek();
    return t.kind === "op" && t.text === text;
  }
  private isKw(text: string): boolean {
    const t = this.peek();
    return t.kind === "kw" && t.text === text;
  }
  private expectOp(text: string): void {
    const t = this.peek();
    if (t.kind !== "op" || t.text !== text) this.unexpected(t, `expected '${text}'`);
    this.i++;
  }

  private node<N extends Node>(n: N): N {
    if (++this.nodes > MAX_NODES) {
      throw new ExprError("limit", `expression has more than ${MAX_NODES} elements`, n.pos);
    }
    return n;
  }

  /** Throws for token `t`: a refused construct by name, else a syntax error. */
  unexpected(t: Token, expected: string): never {
    const refused = t.kind === "op" ? REFUSED_OPS[t.text] : undefined;
    if (refused !== undefined) throw new ExprError("unsafe", refused, t.pos);
    if (t.kind === "name" && REFUSED_KEYWORDS.has(t.text)) {
      const what = t.text === "for" ? "comprehensions are" : `'${t.text}' is`;
      throw new ExprError("unsafe", `${what} not allowed`, t.pos);
    }
    if (t.kind === "end")
      throw new ExprError("syntax", `unexpected end of expression (${expected})`, t.pos);
    throw new ExprError("syntax", `unexpected '${t.text}' (${expected})`, t.pos);
  }

  parseAll(): Node {
    const n = this.expr();
    const t = this.peek();
    if (t.kind === "op" && t.text === ",") {
      return this.tupleTail(n, t.pos);
    }
    if (t.kind !== "end") this.unexpected(t, "expected an operator or the end");
    return n;
  }

  /** `a, b, c` at top level or inside parentheses: a tuple. */
  private tupleTail(first: Node, pos: number): Node {
    const items = [first];
    while (this.isOp(",")) {
      this.i++;
      const t = this.peek();
      if (t.kind === "end" || (t.kind === "op" && t.text === ")")) break;
      items.push(this.expr());
    }
    if (this.peek().kind !== "end" && !this.isOp(")"))
      this.unexpected(this.peek(), "expected ',' or ')'");
    return this.node({ t: "seq", items, tuple: true, pos });
  }

  expr(): Node {
    const t = this.peek();
    if (++this.depth > MAX_DEPTH) {
      throw new ExprError("limit", `expression nested deeper than ${MAX_DEPTH} levels`, t.pos);
    }
    const body = this.orExpr();
    let out = body;
    if (this.isKw("if")) {
      const pos = this.next().pos;
      const test = this.orExpr();
      if (!this.isKw("else")) this.unexpected(this.peek(), "expected 'else'");
      this.i++;
      const orelse = this.expr();
      out = this.node({ t: "if", test, body, orelse, pos });
    }
    this.depth--;
    return out;
  }

  private boolChain(op: "and" | "or", sub: () => Node): Node {
    const first = sub();
    if (!this.isKw(op)) return first;
    const values = [first];
    const pos = this.peek().pos;
    while (this.isKw(op)) {
      this.i++;
      values.push(sub());
    }
    return this.node({ t: "bool", op, values, pos });
  }

  private orExpr(): Node {
    return this.boolChain("or", () => this.andExpr());
  }
  private andExpr(): Node {
    return this.boolChain("and", () => this.notExpr());
  }

  private notExpr(): Node {
    if (!this.isKw("not")) return this.comparison();
    const pos = this.next().pos;
    if (++this.depth > MAX_DEPTH) {
      throw new ExprError("limit", `expression nested deeper than ${MAX_DEPTH} levels`, pos);
    }
    const arg = this.notExpr();
    this.depth--;
    return this.node({ t: "unary", op: "not", arg, pos });
  }

  private comparison(): Node {
    const first = this.arith();
    const ops: CmpOp[] = [];
    const operands = [first];
    for (;;) {
      const t = this.peek();
      if (t.kind === "op" && CMP_OPS.has(t.text)) {
        this.i++;
        ops.push(t.text as CmpOp);
        operands.push(this.arith());
      } else if (t.kind === "name" && (t.text === "in" || t.text === "is")) {
        throw new ExprError("unsafe", `the '${t.text}' operator is not allowed`, t.pos);
      } else if (t.kind === "kw" && t.text === "not" && this.toks[this.i + 1]?.text === "in") {
        throw new ExprError("unsafe", "the 'not in' operator is not allowed", t.pos);
      } else break;
    }
    if (ops.length === 0) return first;
    return this.node({ t: "cmp", ops, operands, pos: first.pos });
  }

  private arith(): Node {
    let left = this.term();
    while (this.isOp("+") || this.isOp("-")) {
      const t = this.next();
      const right = this.term();
      left = this.node({ t: "bin", op: t.text as "+" | "-", left, right, pos: t.pos });
    }
    return left;
  }

  private term(): Node {
    let left = this.unary();
    while (this.isOp("*") || this.isOp("/") || this.isOp("%")) {
      const t = this.next();
      const right = this.unary();
      left = this.node({ t: "bin", op: t.text as "*" | "/" | "%", left, right, pos: t.pos });
    }
    return left;
  }

  private unary(): Node {
    if (this.isOp("-") || this.isOp("+")) {
      const t = this.next();
      if (++this.depth > MAX_DEPTH) {
        throw new ExprError("limit", `expression nested deeper than ${MAX_DEPTH} levels`, t.pos);
      }
      const arg = this.unary();
      this.depth--;
      return this.node({ t: "unary", op: t.text as "-" | "+", arg, pos: t.pos });
    }
    const base = this.atom();
    const t = this.peek();
    if (
      t.kind === "op" &&
      (t.text === "(" || t.text === "[" || t.text === "." || t.text === "**")
    ) {
      if (t.text === "(") {
        throw new ExprError(
          "unsafe",
          "only direct calls of a registered function are allowed",
          t.pos,
        );
      }
      this.unexpected(t, "");
    }
    return base;
  }

  private atom(): Node {
    const t = this.next();
    if (t.kind === "num") return this.node({ t: "lit", v: t.num as number, pos: t.pos });
    if (t.kind === "str") {
      let v = t.text;
      while (this.peek().kind === "str") v += this.next().text;
      return this.node({ t: "lit", v, pos: t.pos });
    }
    if (t.kind === "kw") {
      if (t.text === "True") return this.node({ t: "lit", v: true, pos: t.pos });
      if (t.text === "False") return this.node({ t: "lit", v: false, pos: t.pos });
      if (t.text === "None") return this.node({ t: "lit", v: null, pos: t.pos });
      this.unexpected(t, "expected a value");
    }
    if (t.kind === "name") {
      if (REFUSED_KEYWORDS.has(t.text)) this.unexpected(t, "");
      if (this.isOp("(")) return this.call(t);
      return this.node({ t: "name", id: t.text, pos: t.pos });
    }
    if (t.kind === "op" && t.text === "(") return this.parens(t.pos);
    if (t.kind === "op" && t.text === "[") return this.list(t.pos);
    return this.unexpected(t, "expected a value");
  }

  private parens(pos: number): Node {
    if (this.isOp(")")) {
      this.i++;
      return this.node({ t: "seq", items: [], tuple: true, pos });
    }
    const first = this.expr();
    if (this.isOp(",")) {
      const tup = this.tupleTail(first, pos);
      this.expectOp(")");
      return tup;
    }
    if (this.isOp(")")) {
      this.i++;
      return first;
    }
    return this.unexpected(this.peek(), "expected ')'");
  }

  private list(pos: number): Node {
    const items: Node[] = [];
    while (!this.isOp("]")) {
      items.push(this.expr());
      if (this.isOp(",")) this.i++;
      else if (!this.isOp("]")) this.unexpected(this.peek(), "expected ',' or ']'");
    }
    this.i++;
    return this.node({ t: "seq", items, tuple: false, pos });
  }

  private call(name: Token): Node {
    this.i++; // "("
    const args: Node[] = [];
    const kwargs: { name: string; value: Node }[] = [];
    while (!this.isOp(")")) {
      const t = this.peek();
      if (t.kind === "op" && (t.text === "*" || t.text === "**")) {
        throw new ExprError("unsafe", "argument unpacking is not allowed", t.pos);
      }
      const after = this.toks[this.i + 1];
      if (t.kind === "name" && after?.kind === "op" && after.text === "=") {
        this.i += 2;
        if (kwargs.some((k) => k.name === t.text)) {
          throw new ExprError("syntax", `keyword argument '${t.text}' repeated`, t.pos);
        }
        kwargs.push({ name: t.text, value: this.expr() });
      } else {
        if (kwargs.length > 0) {
          throw new ExprError("syntax", "positional argument follows keyword argument", t.pos);
        }
        args.push(this.expr());
      }
      if (this.isOp(",")) this.i++;
      else if (!this.isOp(")")) this.unexpected(this.peek(), "expected ',' or ')'");
    }
    this.i++;
    return this.node({ t: "call", fn: name.text, args, kwargs, pos: name.pos });
  }
}

/** Parses one expression; throws ExprError (syntax, unsafe or limit) with the position. */
export function parse(src: string): Node {
  if (src.length > MAX_SOURCE) {
    throw new ExprError("limit", `expression longer than ${MAX_SOURCE} characters`, MAX_SOURCE);
  }
  if (src.trim() === "") throw new ExprError("syntax", "empty expression", 0);
  return new Parser(tokenize(src)).parseAll();
}
