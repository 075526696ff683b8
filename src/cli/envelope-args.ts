/**
 * Pure translation of invoke flags into a broker Envelope. The broker re-validates everything; this only
 * gives clear usage errors early and fills defaults (method/path) from the capability when the caller
 * gives none.
 */
import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { AivaultError } from '../core/errors.js';
import type { Envelope, EnvelopeRequest, MultipartField, MultipartFile } from '../core/broker/types.js';
import type { CommandOptions } from './context.js';
import { optList, optString } from './context.js';

export interface CapabilityDefaults {
  readonly methods: readonly string[];
  readonly pathPrefixes: readonly string[];
}

function splitPair(raw: string, flag: string, separators: readonly string[]): [string, string] {
  let best = -1;
  for (const sep of separators) {
    const i = raw.indexOf(sep);
    if (i > 0 && (best === -1 || i < best)) best = i;
  }
  if (best <= 0) throw new AivaultError('usage', `${flag} values must look like name=value`);
  const key = raw.slice(0, best).trim();
  const sepLen = raw[best] === ':' && raw[best + 1] === ' ' ? 2 : 1;
  return [key, raw.slice(best + sepLen)];
}

export function parseHeaderFlag(raw: string): [string, string] {
  const [k, v] = splitPair(raw, '--header', ['=', ':']);
  return [k.toLowerCase(), v.trim()];
}

function readJsonFlag(text: string, flag: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AivaultError('usage', `${flag} is not valid JSON`);
  }
}

/** `--request`/`--request-file` accept a whole envelope or just its `request` object. */
function envelopeFromJson(capability: string, value: unknown, flag: string): Envelope {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AivaultError('usage', `${flag} must be a JSON object`);
  }
  const obj = value as Record<string, unknown>;
  if ('request' in obj) {
    if (obj.capability !== undefined && obj.capability !== capability) {
      throw new AivaultError(
        'usage',
        `${flag} names capability ${String(obj.capability)}, not ${capability}`,
      );
    }
    return { ...(obj as object), capability } as Envelope;
  }
  return { capability, request: obj as unknown as EnvelopeRequest };
}

export function buildEnvelope(
  capability: string,
  opts: CommandOptions,
  defaults?: CapabilityDefaults,
): Envelope {
  const requestJson = optString(opts, 'request');
  const requestFile = optString(opts, 'requestFile');
  if (requestJson !== undefined && requestFile !== undefined) {
    throw new AivaultError('usage', 'give either --request or --request-file, not both');
  }
  const credential = optString(opts, 'credential');
  if (requestJson !== undefined || requestFile !== undefined) {
    let text = requestJson;
    if (requestFile !== undefined) {
      try {
        text = readFileSync(requestFile, 'utf8');
      } catch {
        throw new AivaultError('usage', `cannot read --request-file ${requestFile}`);
      }
    }
    const env = envelopeFromJson(
      capability,
      readJsonFlag(text ?? '', requestFile ? '--request-file' : '--request'),
      '--request',
    );
    return credential ? { ...env, credential } : env;
  }

  const headers = optList(opts, 'header').map(parseHeaderFlag);
  const fields: MultipartField[] = optList(opts, 'multipartField').map((raw) => {
    const [name, value] = splitPair(raw, '--multipart-field', ['=']);
    return { name, value };
  });
  const files: MultipartFile[] = optList(opts, 'multipartFile').map((raw) => {
    const [name, path] = splitPair(raw, '--multipart-file', ['=']);
    return { name, path: resolve(path), filename: basename(path) };
  });
  const body = optString(opts, 'body');
  const bodyFilePath = optString(opts, 'bodyFilePath');
  const modes = [body !== undefined, bodyFilePath !== undefined, fields.length + files.length > 0].filter(
    Boolean,
  );
  if (modes.length > 1) {
    throw new AivaultError(
      'usage',
      'give one body mode: --body, --body-file-path or --multipart-field/--multipart-file',
    );
  }

  const method = (
    optString(opts, 'method') ??
    (defaults?.methods.length === 1 ? defaults.methods[0] : undefined) ??
    (modes.length ? 'POST' : 'GET')
  ).toUpperCase();
  const path = optString(opts, 'path') ?? defaults?.pathPrefixes[0];
  if (path === undefined) throw new AivaultError('usage', `--path is required for ${capability}`);

  const request: EnvelopeRequest = {
    method,
    path,
    ...(headers.length ? { headers } : {}),
    ...(body !== undefined ? { body } : {}),
    ...(bodyFilePath !== undefined ? { bodyFilePath: resolve(bodyFilePath) } : {}),
    ...(fields.length ? { multipart: fields } : {}),
    ...(files.length ? { multipartFiles: files } : {}),
  };
  return { capability, ...(credential ? { credential } : {}), request };
}
