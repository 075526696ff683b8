/**
 * Supply chain: no dependency runs code at `npm install` (.npmrc: ignore-scripts=true). Every package that
 * declares an install script must be reviewed and listed in scripts/install-scripts.json with the reason
 * skipping it is safe, and the packages whose binaries we rely on must load without their scripts.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { auditVerdict, lockfileFindings, type KnownAdvisory } from '../../scripts/audit.mjs';

const ROOT = resolve(import.meta.dirname, '../..');

interface LockPackage {
  hasInstallScript?: boolean;
}
interface AllowList {
  skipped: Record<string, string>;
  builtFromSource: Record<string, string>;
}

const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockPackage>;
};
const allow = JSON.parse(readFileSync(join(ROOT, 'scripts/install-scripts.json'), 'utf8')) as AllowList;

function withInstallScripts(): string[] {
  return Object.entries(lock.packages)
    .filter(([path, p]) => path !== '' && p.hasInstallScript)
    .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
}

describe('install scripts', () => {
  it('.npmrc makes npm skip every dependency install script', () => {
    const npmrc = readFileSync(join(ROOT, '.npmrc'), 'utf8');
    expect(npmrc).toMatch(/^ignore-scripts=true$/m);
  });

  it('every dependency with an install script is reviewed in scripts/install-scripts.json', () => {
    const reviewed = new Set([...Object.keys(allow.skipped), ...Object.keys(allow.builtFromSource)]);
    const unreviewed = withInstallScripts().filter((name) => !reviewed.has(name));
    expect(unreviewed).toEqual([]);
  });

  it('the allow-list names no package that no longer has an install script', () => {
    const present = new Set(withInstallScripts());
    const stale = [...Object.keys(allow.skipped), ...Object.keys(allow.builtFromSource)].filter(
      (name) => !present.has(name),
    );
    expect(stale).toEqual([]);
  });

  it('native packages we depend on load without their install scripts', () => {
    // In a child process: a bad binary (argon2's glibc prebuild on Debian 12) crashes the loader instead
    // of throwing, which would take the test worker down with it.
    for (const name of ['argon2', 'sodium-native', 'uWebSockets.js', 'msgpackr-extract']) {
      const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(name)})`], { cwd: ROOT });
      expect({ name, status: r.status, signal: r.signal }).toEqual({ name, status: 0, signal: null });
    }
  });

  it('packages built from source are built by the set-up step of `npm test`', () => {
    const setup = readFileSync(join(ROOT, 'scripts/setup-test-env.sh'), 'utf8');
    for (const how of Object.values(allow.builtFromSource)) {
      const build = /scripts\/[\w.-]+\.sh(?: [\w@/.-]+)?/.exec(how)?.[0];
      expect(build, how).toBeDefined();
      expect(setup).toContain(`"${build}|`);
    }
  });

  it('CI runs exactly the README test command, which starts with the set-up step', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.test).toMatch(/^bash scripts\/setup-test-env\.sh && /);
    expect(pkg.scripts.test).toContain('node scripts/audit.mjs');
    expect(pkg.scripts.test).toMatch(/dbus-run-session -- bash scripts\/keyring-session\.sh vitest run$/);
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toMatch(/^npm test +# /m);
    const ciCommands = readFileSync(join(ROOT, '.ci/run'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#') && !/^(set|cd|export) /.test(l));
    expect(ciCommands).toEqual(['npm install --no-audit --no-fund', 'npm test']);
  });
});

describe('CI audit gate (scripts/audit.mjs)', () => {
  it('fails on a high or critical advisory, passes on low/moderate only', () => {
    const meta = (high: number, critical = 0) => ({
      metadata: {
        vulnerabilities: { info: 0, low: 1, moderate: 2, high, critical, total: 3 + high + critical },
      },
    });
    expect(
      auditVerdict({ ...meta(1), vulnerabilities: { undici: { severity: 'high', range: '<7.1.0' } } }).pass,
    ).toBe(false);
    expect(auditVerdict({ ...meta(0, 1), vulnerabilities: { x: { severity: 'critical' } } }).pass).toBe(
      false,
    );
    expect(auditVerdict({ ...meta(0), vulnerabilities: { y: { severity: 'moderate' } } }).pass).toBe(true);
  });

  it('tolerates only an unreachable advisory endpoint, and says so', () => {
    const v = auditVerdict({ message: '405 Method Not Allowed - POST …/advisories/bulk', statusCode: 405 });
    expect(v.pass).toBe(true);
    expect(v.lines.join('\n')).toMatch(/NOT audited: 405/);
  });

  const floors = JSON.parse(readFileSync(join(ROOT, 'scripts/advisory-floors.json'), 'utf8')) as {
    advisories: KnownAdvisory[];
  };

  it('the committed lockfile carries no production package in a known high/critical advisory range', () => {
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as unknown;
    expect(lockfileFindings(lock, floors.advisories)).toEqual([]);
  });

  it('flags the ws@8.13.0 that uWebSockets.js pinned (fixed by the override), nested and aliased', () => {
    const lock = {
      packages: {
        '': { name: 'aivault' },
        'node_modules/uWebSockets.js': {
          name: '@trufflesuite/uws-js-unofficial',
          version: '20.30.0-unofficial.0',
        },
        'node_modules/uWebSockets.js/node_modules/ws': { version: '8.13.0' },
        'node_modules/ws': { version: '8.23.0' },
        'node_modules/tar-fs': { version: '2.1.1' },
        'node_modules/vitest/node_modules/ws': { version: '8.13.0', dev: true },
      },
    };
    const hits = lockfileFindings(lock, floors.advisories);
    expect(hits.filter((h) => h.includes('ws@8.13.0'))).toHaveLength(1);
    expect(hits.join('\n')).toContain('node_modules/uWebSockets.js/node_modules/ws: GHSA-3h5v-q93c-6h6q');
    expect(hits.filter((h) => h.includes('tar-fs@2.1.1'))).toHaveLength(3);
    expect(hits.join('\n')).not.toContain('8.23.0');
  });

  it('every listed advisory has a valid semver range and a GHSA id', () => {
    for (const a of floors.advisories) {
      expect(a.id).toMatch(/^GHSA(-[23456789cfghjmpqrvwx]{4}){3}$/);
      expect(['high', 'critical']).toContain(a.severity);
      expect(() =>
        lockfileFindings({ packages: { 'node_modules/x': { version: '1.0.0' } } }, [a]),
      ).not.toThrow();
    }
  });
});
