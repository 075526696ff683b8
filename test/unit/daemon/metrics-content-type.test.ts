/**
 * /metrics names its content type without loading prom-client (the exposition is imported on the first
 * scrape): the constant must stay what prom-client's registry produces.
 */
import { Registry } from 'prom-client';
import { expect, it } from 'vitest';
import { METRICS_CONTENT_TYPE } from '../../../src/front/metrics.js';

it('the /metrics content type is prom-client’s', () => {
  expect(METRICS_CONTENT_TYPE).toBe(Registry.PROMETHEUS_CONTENT_TYPE);
});
