import { describe, expect, it } from 'vitest';
import { escapeControl, painter, renderError, renderFields, renderTable } from '../../../src/cli/output.js';

describe('escapeControl', () => {
  it.each([
    ['\u001b[2J', '\\x1b[2J'],
    ['a\nFAKE', 'a\\nFAKE'],
    ['\r\t\u0000\u007f', '\\r\\t\\x00\\x7f'],
    ['\u009b31m', '\\x9b31m'], // C1 CSI
    ['x\u2028y\u202ez', 'x\\u2028y\\u202ez'],
    ['plain id openai/models-1.0', 'plain id openai/models-1.0'],
    ['ünïcödé ok', 'ünïcödé ok'],
  ])('%j → %s', (input, out) => {
    expect(escapeControl(input)).toBe(out);
  });
});

describe('renderers escape untrusted text but keep their own colours', () => {
  const p = painter(true);
  it('renderTable keeps painted SGR codes and escapes everything else', () => {
    const out = renderTable(['id'], [[p.green('ok')], ['evil\u001b[2J\nFAKE']], p);
    expect(out).toContain(p.green('ok'));
    expect(out).toContain('evil\\x1b[2J\\nFAKE');
    expect(out.split('\n')).toHaveLength(3);
  });
  it('renderFields and renderError escape values and messages', () => {
    expect(renderFields([['k', 'v\u001b]0;title\u0007']], painter(false))).toBe('k  v\\x1b]0;title\\x07');
    const e = renderError(
      { error: 'invalid_request', message: 'bad \u001b[31mred\u001b[0m\nFAKE' },
      painter(false),
    );
    expect(e).toBe('error [invalid_request] bad \\x1b[31mred\\x1b[0m\\nFAKE');
  });
});
