import { describe, expect, it } from 'vitest';
import { isAwsRegion, regionalHost, regionOverride } from '../../../src/core/broker/aws-region.js';
import type { AuthSpec } from '../../../src/core/registry/types.js';

const auth: AuthSpec = { aws_sigv4: { service: 'bedrock', region: 'us-east-1' } };

describe('AWS region override (pure)', () => {
  it('accepts region names only', () => {
    for (const r of ['eu-west-1', 'us-gov-west-1', 'ap-southeast-2', 'il-central-1'])
      expect(isAwsRegion(r)).toBe(true);
    for (const r of ['', 'eu', 'EU-WEST-1', 'eu-west-1.evil.com', 'evil.com', 'eu-west-x', 'eu_west_1'])
      expect(isAwsRegion(r)).toBe(false);
  });

  it('relabels only the region label of an amazonaws.com host', () => {
    const o = regionOverride({ auth, params: { region: 'eu-west-1' } });
    expect(o).toEqual({ from: 'us-east-1', to: 'eu-west-1' });
    expect(regionalHost('bedrock-runtime.us-east-1.amazonaws.com', o)).toBe(
      'bedrock-runtime.eu-west-1.amazonaws.com',
    );
    expect(regionalHost('s3.us-east-1.amazonaws.com', o)).toBe('s3.eu-west-1.amazonaws.com');
    for (const h of [
      'us-east-1.amazonaws.com',
      'a.us-east-1.b.amazonaws.com',
      'x.us-east-1.example.com',
      'api.openai.com',
    ])
      expect(regionalHost(h, o)).toBe(h);
  });

  it('has no override without AWS auth, a region param, or with a bad one', () => {
    expect(regionOverride({ auth })).toBeUndefined();
    expect(regionOverride({ auth, params: { region: 'us-east-1' } })).toBeUndefined();
    expect(regionOverride({ auth, params: { region: 'evil.com' } })).toBeUndefined();
    expect(
      regionOverride({
        auth: { header: { header_name: 'x', value_template: '{{secret}}' } },
        params: { region: 'eu-west-1' },
      }),
    ).toBeUndefined();
  });
});
