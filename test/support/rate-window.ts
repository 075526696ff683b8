/**
 * Rate limits count per fixed minute window (src/pipeline/rate-limit.ts). A test that counts admissions
 * must not straddle a window boundary, where two windows legitimately admit up to 2L.
 */
import { WINDOW_MS } from '../../src/pipeline/rate-limit.js';

/** Wait for the next window when fewer than `marginMs` are left in the current one. */
export async function awayFromRateWindowEdge(marginMs = 10_000): Promise<void> {
  const into = Date.now() % WINDOW_MS;
  if (into > WINDOW_MS - marginMs) await new Promise((r) => setTimeout(r, WINDOW_MS - into + 100));
}
