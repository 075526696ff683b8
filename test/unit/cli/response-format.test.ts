import { describe, expect, it } from 'vitest';
import { shapeJson, toMarkdown } from '../../../src/cli/response-format.js';

const none = { excludeFields: [], wrapFields: [] };

describe('json shaping', () => {
  it('excludes fields at every depth and wraps under a namespace', () => {
    expect(
      shapeJson(
        { a: 1, usage: 2, nested: { usage: 3, b: 4 } },
        { ...none, excludeFields: ['usage'], namespace: 'data' },
      ),
    ).toEqual({
      data: { a: 1, nested: { b: 4 } },
    });
  });
});

describe('markdown', () => {
  it('renders fields as titled sections with nested blocks', () => {
    const md = toMarkdown(
      { model_name: 'gpt', choices: [{ text: 'hi' }], tags: ['a', 'b'], empty: '' },
      none,
    );
    expect(md).toBe(
      '# Model Name\n\ngpt\n\n# Choices\n\n<begin choices>\n# Text\n\nhi\n</end choices>\n\n# Tags\n\n  - a\n  - b\n\n# Empty\n\nNone',
    );
  });

  it('wraps named fields and the namespace', () => {
    expect(toMarkdown({ content: '**x**' }, { ...none, wrapFields: ['content'], namespace: 'data' })).toBe(
      '<begin data>\n# Content\n\n<begin content>\n**x**\n</end content>\n</end data>\n',
    );
  });
});
