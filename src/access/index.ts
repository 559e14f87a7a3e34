export {
  Access,
  type AcfConfig,
  AcfError,
  type AcfGroup,
  type AcfRule,
  DEFAULT_ASG,
  decodeAcf,
  MAX_ACF_BYTES,
  parseAcf,
} from "./acf.ts";
export {
  type AuditEntry,
  type AuditInput,
  AuditLog,
  type AuditOptions,
  type AuditResult,
  type AuditVia,
  summarizeValue,
} from "./audit.ts";
export { CalcError, type CalcProgram, calcIsTrue, compileCalc } from "./calc.ts";
export { AccessConfigError, type AccessSettings, accessSettings } from "./env.ts";
export { groupsNotAllowed, groupsNotAllowedMessage } from "./groups.ts";
export { SecurityPolicy } from "./policy.ts";
export { type AccessRouteDeps, accessRoutes, auditRequest } from "./rest.ts";
export {
  accessOf,
  CompiledAcf,
  canRead,
  canWrite,
  caRights,
  type Decision,
  type HostMode,
  TRAP_WRITE,
} from "./rules.ts";
export {
  AccessSecurity,
  type AccessSecurityOptions,
  type AccessStatus,
  type ChangeListener,
  type Identity,
  inputValue,
  type ReloadResult,
} from "./security.ts";
