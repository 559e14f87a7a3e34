/** The 50-rule access security file of the access benchmarks (scripts/bench/access.ts). */

/** 50 rules in group BENCH; the one that grants `user` write (while BENCH:MODE is 1) is the last. */
export function fiftyRules(user: string): string {
  const lines: string[] = [];
  for (let i = 0; i < 10; i++) lines.push(`UAG(team${i}) {user${i}a, user${i}b, user${i}c}`);
  lines.push(`UAG(bench) {${user}}`);
  for (let i = 0; i < 5; i++) lines.push(`HAG(room${i}) {console${i}a, console${i}b}`);
  lines.push("ASG(DEFAULT) { RULE(1, READ) }");
  lines.push("ASG(BENCH) {", "  INPA(BENCH:MODE)");
  for (let i = 0; i < 49; i++) {
    const body = i % 3 === 0 ? `CALC("A=${i + 2}")` : `UAG(team${i % 10}) HAG(room${i % 5})`;
    lines.push(`  RULE(1, ${i === 0 ? "READ" : "WRITE"}) { ${body} }`);
  }
  lines.push(`  RULE(1, WRITE) { UAG(bench) CALC("A=1") }`, "}");
  return `${lines.join("\n")}\n`;
}
