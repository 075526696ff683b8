/**
 * The id grammar shared by the registry, the catalog store files and the caller's envelope (capability
 * and credential ids): letters, digits, `. _ - /`, at most 128 characters. No control characters, so an
 * id that passed it is safe to log and to print.
 */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;

export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}
