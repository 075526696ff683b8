/**
 * Per-thread health for /metrics: every SAMPLE_MS each daemon thread (main, crypto worker, request
 * workers) writes its own event-loop delay percentiles, event-loop utilisation and heap use into its
 * region of the metrics buffer (src/core/threads/metrics-buffer.ts). One unref'd timer per thread, no
 * message: the main thread reads the words when scraped. Runs on every thread of the daemon. The same
 * samples decide when a thread that went quiet after a burst gives its grown heap back (idle-release.ts).
 */
import { getHeapStatistics } from 'node:v8';
import { monitorEventLoopDelay, performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { MetricsWriter } from './metrics-buffer.js';
import { idleStep, INITIAL_IDLE_STATE, releaseIdleMemory } from './idle-release.js';

const SAMPLE_MS = 1000;

/**
 * Event-loop delay is measured only within this long after the last /metrics scrape. The delay histogram
 * is a timer firing every 10 ms in each thread: on an idle daemon that was ~100 wake-ups a second per
 * thread and 1.5% of a core doing nothing (bench/PROFILE.md), for a figure only a scraper reads. The first
 * scrape after a quiet spell therefore reads zeros; the next ones, a second later, the live figures.
 */
export const DELAY_WATCH_MS = 5 * 60_000;

/** Start sampling this thread into `writer`'s region; returns a stop function. */
export function startThreadSampler(writer: MetricsWriter, intervalMs = SAMPLE_MS): () => void {
  // 10 ms resolution while measuring: a finer one costs a timer wake-up per ms on every thread.
  const eld = monitorEventLoopDelay({ resolution: 10 });
  let measuring = false;
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let idle = INITIAL_IDLE_STATE;
  let releases = 0;
  const sample = (): void => {
    const now = performance.eventLoopUtilization();
    const delta = performance.eventLoopUtilization(now, last);
    last = now;
    // The histogram includes the resolution interval itself; subtract it so an idle loop reads ~0.
    const ns = (v: number): number => Math.max(0, v - 10e6) / 1000;
    const watched = Date.now() - writer.lastScrapeMs() < DELAY_WATCH_MS;
    if (measuring && eld.count > 0) {
      writer.setThread('eldP50Us', ns(eld.percentile(50)));
      writer.setThread('eldP99Us', ns(eld.percentile(99)));
      writer.setThread('eldMaxUs', ns(eld.max));
      writer.setThread('eldMeanUs', ns(eld.mean));
    }
    eld.reset();
    if (watched !== measuring) {
      measuring = watched;
      if (watched) eld.enable();
      else {
        eld.disable();
        for (const f of ['eldP50Us', 'eldP99Us', 'eldMaxUs', 'eldMeanUs'] as const) writer.setThread(f, 0);
      }
    }
    writer.setThread('eluPpm', delta.utilization * 1e6);
    const step = idleStep(idle, delta.utilization);
    idle = step.state;
    if (step.release && releaseIdleMemory()) {
      writer.setThread('idleReleases', ++releases);
      // The collection's own time must not count as activity in the next sample.
      last = performance.eventLoopUtilization();
    }
    const heap = getHeapStatistics();
    writer.setThread('heapUsedBytes', heap.used_heap_size);
    writer.setThread('heapTotalBytes', heap.total_heap_size);
    writer.setThread('sampledAtMs', Date.now());
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    if (measuring) eld.disable();
  };
}
