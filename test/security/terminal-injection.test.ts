/**
 * Issue 19 finding 5 (input hygiene): a same-user caller puts terminal control sequences into the fields
 * it controls, a capability id and `clientIp`, so that the operator's `aivault audit` (or an error printed by
 * the CLI) clears the screen, moves the cursor or shows a forged line. Stopped by: capability ids must match
 * the registry id grammar and clientIp must be an IP literal before anything is logged (src/core/broker/ids.ts,
 * src/request-worker/pipeline/invoke.ts); every human-readable CLI output escapes control characters (src/cli/output.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/core/protocol/client.js';
import { startAttackEnv, type AttackEnv } from './support/attack-env.js';

const CLEAR = '\u001b[2J';
const EVIL_CAP = `openai/models${CLEAR}\nFAKE LINE audit cleared`;
const EVIL_IP = `127.0.0.1${CLEAR}\nFAKE LINE from 10.0.0.1`;

let a: AttackEnv;
beforeAll(async () => {
  a = await startAttackEnv();
}, 120_000);
afterAll(() => a?.close());

/** What the attack wants: an escape reaching the terminal, or a line that starts with the forged text. */
function expectInert(text: string): void {
  expect(text).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
  expect(text).not.toMatch(/^FAKE LINE/m);
}

describe('attack: control characters in caller-supplied ids reach the operator’s terminal', () => {
  it('a capability id with an escape and a newline is refused, and the error is printed inert', async () => {
    const r = await a.cli(['invoke', EVIL_CAP]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/invalid_request|capability_not_found/);
    expectInert(r.stderr);
    expectInert(r.stdout);
  });

  it('a clientIp with an escape and a newline is refused (CLI --client-ip)', async () => {
    const r = await a.cli(['invoke', 'openai/models', '--client-ip', EVIL_IP]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/invalid_request.*clientIp/);
    expectInert(r.stderr);
  });

  it('the same over a raw socket connection, then `aivault audit` shows nothing raw', async () => {
    const warm = await a.cli(['invoke', 'openai/models', '--path', '/v1/models/warm-up']);
    expect(warm.code, warm.stderr).toBe(0);
    const client = await connect({ socketPath: `${a.vaultDir}/run/aivaultd.sock` });
    try {
      const bad = [
        client.invoke({ capability: EVIL_CAP, request: { method: 'GET', path: '/v1/models' } }),
        client.invoke(
          { capability: 'openai/models', request: { method: 'GET', path: '/v1/models' } },
          { clientIp: EVIL_IP },
        ),
        client.invoke(
          { capability: EVIL_CAP, request: { method: 'GET', path: '/v1/models' } },
          { clientIp: EVIL_IP, workspaceId: `w${CLEAR}` },
        ),
      ];
      for (const r of await Promise.allSettled(bad)) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'invalid_request' });
      }
    } finally {
      client.close();
    }
    const human = await a.cli(['audit', '--limit', '20']);
    expect(human.code, human.stderr).toBe(0);
    expectInert(human.stdout);
    expect(human.stdout).toMatch(/invalid_request/); // the refused calls are audited, without the bad text
    const json = await a.cli(['-v', 'audit', '--limit', '20']);
    expect(json.stdout).not.toContain('FAKE LINE');
    expect(json.stdout).not.toContain('\\u001b');
  });
});
