/**
 * Wildcards over a public suffix. `*.co.uk` or `*.workers.dev` passes the "suffix of at least two labels"
 * rule but matches names that any member of the public can register (co.uk) or any tenant of a hosting
 * platform can deploy code under (workers.dev, herokuapp.com, supabase.co, s3.amazonaws.com …): a
 * credential allowed there sends its key to whoever the agent names. The Public Suffix List, ICANN and
 * private sections both, says which suffixes those are.
 *
 * Why tldts: it is the maintained PSL implementation (the list changes weekly; hand-copying it would rot).
 * It is loaded lazily, on the paths that SET a host (credential create/update), because its ~13 ms parse
 * would otherwise be paid by every CLI start and request worker; invoke never needs it.
 */
import { createRequire } from 'node:module';
import type * as TldtsModule from 'tldts';

type Tldts = typeof TldtsModule;
let tldts: Tldts | undefined;

/**
 * For a `*.suffix` pattern whose suffix is itself on the Public Suffix List, that suffix; else undefined
 * (also for concrete hosts). `*.x.test` → undefined; `*.co.uk` → `co.uk`; `*.a.workers.dev` → undefined.
 */
export function publicSuffixWildcard(pattern: string): string | undefined {
  if (!pattern.startsWith('*.')) return undefined;
  const suffix = pattern.slice(2).replace(/:\d+$/, '');
  tldts ??= createRequire(import.meta.url)('tldts') as Tldts;
  return tldts.getPublicSuffix(suffix, { allowPrivateDomains: true }) === suffix ? suffix : undefined;
}
