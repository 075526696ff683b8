/**
 * Coverage-guided fuzzing with Jazzer.js (libFuzzer) of the parsers on the untrusted boundary: the msgpack
 * frame decoder, the envelope parser, the path normalizer, the host matcher, the HTTP route/token parsing,
 * and the broker.json loader (a tampered file must never widen policy). Each runs for
 * JAZZER_SECONDS (default 6 in `npm test`; `npm run fuzz` sets 60 and keeps its corpus in .fuzz-corpus/).
 * A run passes only if libFuzzer exits cleanly, wrote no crashing input, and its coverage features grew
 * beyond the seeds' (it really explored). The canary target carries a planted bug that must be found, so
 * a broken harness that stops reporting findings fails here too.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeArtifact, jazzerAvailable, runJazzer, type JazzerRun } from './runner.js';
import { parseEnvelope } from '../../../src/core/broker/envelope.js';
import { CANARY_SEED_ID, type JazzerTarget } from './seeds.js';

const SECONDS = Number(process.env.JAZZER_SECONDS ?? process.env.FUZZ_SECONDS ?? '6');
const PERSISTENT = process.env.FUZZ_CORPUS_DIR; // keep what libFuzzer learns between on-demand runs
const ROOT = resolve(import.meta.dirname, '../../..');
const work = mkdtempSync(join(ROOT, '.fuzz-build-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function dirs(target: string): { corpusDir: string; artifactDir: string } {
  return {
    corpusDir: PERSISTENT ? join(PERSISTENT, target) : join(work, 'corpus', target),
    artifactDir: join(work, 'artifacts', target),
  };
}

function report(r: JazzerRun): string {
  const tail = r.output.split('\n').slice(-25).join('\n');
  return `${r.target}: exit ${r.exitCode}, ft ${r.initialFeatures} → ${r.finalFeatures}, ${r.executions} runs\n${r.artifacts.map(describeArtifact).join('\n')}\n${tail}`;
}

describe.sequential('Jazzer.js coverage-guided fuzzing', () => {
  it('the Jazzer.js addon is built', () => {
    expect(jazzerAvailable()).toEqual({ ok: true });
  });

  const targets: JazzerTarget[] = ['frame', 'envelope', 'path', 'host', 'route', 'broker'];
  for (const target of targets) {
    it(`${target}: no property broken, coverage grows`, { timeout: (SECONDS + 60) * 1000 }, async () => {
      const r = await runJazzer(target, { seconds: SECONDS, ...dirs(target) });
      process.stdout.write(
        `jazzer ${target}: ${r.executions} runs in ${SECONDS}s, features ${r.initialFeatures} → ${r.finalFeatures}\n`,
      );
      expect(r.artifacts, report(r)).toEqual([]);
      expect(r.exitCode, report(r)).toBe(0);
      expect(r.executions, report(r)).toBeGreaterThan(1000);
      expect(r.initialFeatures, report(r)).toBeGreaterThan(0);
      expect(r.finalFeatures, report(r)).toBeGreaterThan(r.initialFeatures);
    });
  }

  it(
    'canary: a planted bug behind the envelope parser is found and reported',
    { timeout: 120_000 },
    async () => {
      const r = await runJazzer('canary', { seconds: 60, ...dirs('canary') });
      expect(r.exitCode, report(r)).toBe(77);
      expect(r.artifacts, report(r)).toHaveLength(1);
      expect(r.output).toContain('planted bug reached');
      // The written input replays: it is an envelope the real parser accepts, with a mutated canary id.
      const replayed = parseEnvelope(JSON.parse(readFileSync(r.artifacts[0]!, 'utf8')) as unknown);
      expect(replayed.ok, describeArtifact(r.artifacts[0]!)).toBe(true);
      const id = replayed.ok ? replayed.value.capability : '';
      expect(id.startsWith('canary/') && id !== CANARY_SEED_ID, id).toBe(true);
    },
  );
});
