export { AuditLog, ensureAuditDir, sanitizeEvent, utcDay } from './audit-log.js';
export type { AuditEvent, AuditInput, AuditListOptions } from './audit-log.js';
