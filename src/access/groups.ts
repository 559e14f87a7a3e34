/**
 * The operator's cap on the access security groups plugins may put their PVs in: a plugin is
 * untrusted code from git, so it must not be able to move its PVs into a group with looser rules
 * than the operator intended (say, one that lets everyone write). `allowed` null = any group.
 */

/** The groups among `asgs` that `allowed` does not contain, sorted, without duplicates. */
export function groupsNotAllowed(
  asgs: Iterable<string | undefined>,
  allowed: readonly string[] | null,
): string[] {
  if (allowed === null) return [];
  const ok = new Set(allowed);
  const bad = new Set<string>();
  for (const g of asgs) if (g !== undefined && !ok.has(g)) bad.add(g);
  return [...bad].sort();
}

/** The message of a refused plugin, naming the groups and where the cap is set. */
export function groupsNotAllowedMessage(bad: string[], allowed: readonly string[]): string {
  const list = allowed.length > 0 ? allowed.join(", ") : "none";
  return `access security group${bad.length > 1 ? "s" : ""} ${bad.join(", ")} not allowed for plugins (access_groups in the server config allows: ${list})`;
}
