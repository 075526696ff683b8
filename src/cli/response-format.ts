/**
 * Output shaping for `aivault json` and `aivault markdown`: pure functions over a parsed JSON body.
 * Markdown is meant for LLM context: `# Title` per field, `<begin key>…</end key>` around nested data so
 * a model can tell where a field starts and ends.
 */

export interface ShapeOptions {
  readonly namespace?: string;
  readonly excludeFields: readonly string[];
  readonly wrapFields: readonly string[];
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Remove excluded keys at every depth. */
export function excludeFields(value: Json, exclude: ReadonlySet<string>): Json {
  if (Array.isArray(value)) return value.map((v) => excludeFields(v, exclude));
  if (value !== null && typeof value === 'object') {
    const out: { [key: string]: Json } = {};
    for (const [k, v] of Object.entries(value)) if (!exclude.has(k)) out[k] = excludeFields(v, exclude);
    return out;
  }
  return value;
}

export function shapeJson(value: unknown, opts: ShapeOptions): unknown {
  const trimmed = excludeFields(value as Json, new Set(opts.excludeFields));
  const ns = opts.namespace?.trim();
  return ns ? { [ns]: trimmed } : trimmed;
}

export function titleCase(key: string): string {
  return key
    .split(/[_\-\s]+/)
    .filter(Boolean)
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join(' ');
}

const isEmpty = (v: Json): boolean =>
  v === null ||
  (typeof v === 'string' && v.trim() === '') ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);

const isRecord = (v: Json): v is { [k: string]: Json } =>
  v !== null && typeof v === 'object' && !Array.isArray(v);
/** Objects and arrays of objects get `<begin>` markers; primitive lists stay a plain bullet list. */
const isBlock = (v: Json): boolean => isRecord(v) || (Array.isArray(v) && v.every(isRecord));

const block = (key: string, body: string): string => `<begin ${key}>\n${body}\n</end ${key}>`;

function renderScalar(v: Json): string {
  if (v === null) return 'None';
  if (typeof v === 'string') return v.trim() === '' ? 'None' : v;
  return String(v);
}

function renderArray(items: Json[], opts: ShapeOptions, key: string): string {
  if (items.length === 0) return 'None';
  if (items.every((i) => i !== null && typeof i === 'object' && !Array.isArray(i))) {
    return items.map((i) => renderObject(i as { [k: string]: Json }, opts, false)).join('\n\n');
  }
  if (items.every((i) => i === null || typeof i !== 'object'))
    return items.map((i) => `  - ${renderScalar(i)}`).join('\n');
  return block(key, items.map((i) => renderValue(i, opts, key, false)).join('\n\n'));
}

function renderValue(v: Json, opts: ShapeOptions, key: string | undefined, top: boolean): string {
  if (Array.isArray(v)) return renderArray(v, opts, key ?? 'items');
  if (v !== null && typeof v === 'object') return renderObject(v, opts, top);
  const text = renderScalar(v);
  if (
    !top &&
    key !== undefined &&
    typeof v === 'string' &&
    opts.wrapFields.includes(key) &&
    text !== 'None'
  ) {
    return block(key, text);
  }
  return text;
}

function renderObject(obj: { [k: string]: Json }, opts: ShapeOptions, top: boolean): string {
  const sections: string[] = [];
  for (const [key, value] of Object.entries(obj)) {
    if (opts.excludeFields.includes(key)) continue;
    let rendered: string;
    if (isEmpty(value)) rendered = 'None';
    else if (isBlock(value)) rendered = block(key, renderValue(value, opts, key, false));
    else rendered = renderValue(value, opts, key, false);
    sections.push(`# ${titleCase(key)}\n\n${rendered}`);
  }
  if (sections.length === 0) return top ? '' : 'None';
  return sections.join('\n\n');
}

export function toMarkdown(value: unknown, opts: ShapeOptions): string {
  const content = renderValue(value as Json, opts, undefined, true);
  if (content === '') return '';
  const ns = opts.namespace?.trim();
  return ns ? `${block(ns, content)}\n` : content;
}
