// What the active set is decided on (src/pool/worker-load.ts), measured on real worker threads.
import { Worker } from 'node:worker_threads';
import { describe, expect, it, onTestFinished } from 'vitest';
import { cgroupCpuLimit, createLoadMeter, usableIdleCores } from '../../../src/pool/worker-load.js';

function thread(code: string): Worker {
  const w = new Worker(code, { eval: true });
  onTestFinished(async () => {
    await w.terminate();
  });
  return w;
}
const online = (w: Worker): Promise<void> => new Promise((r) => w.once('online', () => r()));

describe('worker load meter', () => {
  it('reads a spinning worker as busy and an idle one as idle; cores are never negative', async () => {
    // The busy thread spins in 5 ms slices so its event loop still turns.
    const busy = thread(
      `const spin = () => { const e = Date.now() + 5; while (Date.now() < e); setImmediate(spin); }; spin();`,
    );
    const idle = thread(`setInterval(() => {}, 1000);`);
    await Promise.all([online(busy), online(idle)]);
    const meter = createLoadMeter({ cpuLimitCores: null });
    expect(meter([busy])).toBeUndefined(); // the first window only sets each worker's baseline
    const idleMeter = createLoadMeter({ cpuLimitCores: null });
    idleMeter([idle]);
    await new Promise((r) => setTimeout(r, 300));
    const b = meter([busy]);
    const i = idleMeter([idle]);
    expect(b?.activeElu).toBeGreaterThan(0.8);
    expect(i?.activeElu).toBeLessThan(0.2);
    for (const x of [b, i]) {
      expect(x?.idleCores).toBeGreaterThanOrEqual(0);
      expect(x?.otherCores).toBeGreaterThanOrEqual(0);
    }
  });
});

describe('cgroup CPU quota', () => {
  const files =
    (map: Record<string, string>) =>
    (p: string): string => {
      const v = map[p];
      if (v === undefined) throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
      return v;
    };

  it('reads a v2 quota from cpu.max under the process cgroup, none for "max"', () => {
    expect(
      cgroupCpuLimit(
        files({ '/proc/self/cgroup': '0::/app\n', '/sys/fs/cgroup/app/cpu.max': '150000 100000\n' }),
      ),
    ).toBe(1.5);
    expect(
      cgroupCpuLimit(files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': 'max 100000\n' })),
    ).toBeUndefined();
  });

  it('reads a v1 cfs quota (-1: none), under a combined cpu,cpuacct mount or a cpu one', () => {
    const v1 = (quota: string, mount: string) =>
      cgroupCpuLimit(
        files({
          '/proc/self/cgroup': '4:memory:/x\n3:cpu,cpuacct:/svc\n0::/\n',
          [`${mount}/svc/cpu.cfs_quota_us`]: `${quota}\n`,
          [`${mount}/svc/cpu.cfs_period_us`]: '100000\n',
        }),
      );
    expect(v1('50000', '/sys/fs/cgroup/cpu,cpuacct')).toBe(0.5);
    expect(v1('200000', '/sys/fs/cgroup/cpu')).toBe(2);
    expect(v1('-1', '/sys/fs/cgroup/cpu,cpuacct')).toBeUndefined();
  });

  it('no /proc or unreadable files: no quota (never a throw)', () => {
    expect(cgroupCpuLimit(files({}))).toBeUndefined();
    expect(cgroupCpuLimit(files({ '/proc/self/cgroup': 'garbage\n0::/a\n' }))).toBeUndefined();
    expect(() => cgroupCpuLimit()).not.toThrow();
  });

  it('caps the idle cores at what the quota leaves this process', () => {
    expect(usableIdleCores(6, 0.9, 1)).toBeCloseTo(0.1);
    expect(usableIdleCores(6, 1.2, 1)).toBe(0);
    expect(usableIdleCores(0.3, 0.1, 4)).toBe(0.3);
    expect(usableIdleCores(6, 0.9, undefined)).toBe(6);
    expect(usableIdleCores(-0.1, 0, undefined)).toBe(0);
  });

  it('a meter under a quota the daemon already uses never reports a core to spare', async () => {
    const busy = thread(
      `const spin = () => { const e = Date.now() + 5; while (Date.now() < e); setImmediate(spin); }; spin();`,
    );
    await online(busy);
    // This process (the test runner + the spinning thread) uses more than 0.2 core.
    const meter = createLoadMeter({ cpuLimitCores: 0.2 });
    meter([busy]);
    await new Promise((r) => setTimeout(r, 300));
    expect(meter([busy])?.idleCores).toBe(0);
  });
});
