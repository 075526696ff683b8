/**
 * Builds the outgoing request body from a Plan body: inline bytes, a file streamed from disk, or a
 * multipart/form-data body framed with the broker's own random boundary (fields + files read from disk or
 * inline). Enforces maxRequestBodyBytes on sizes known from stat before anything is sent.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { AivaultError } from '../../core/errors.js';
import type { MultipartFile, PlanBody } from '../../core/broker/types.js';

export interface BuiltBody {
  readonly body: Uint8Array | Readable | undefined;
  readonly length: number;
  /** Set for multipart: the broker's own content-type (replaces any caller value). */
  readonly contentType?: string;
  /** The inline bytes when available (auth strategies that sign the body need them). */
  readonly bytes?: Uint8Array;
}

function tooLarge(size: number, max: number): AivaultError {
  return new AivaultError(
    'body_too_large',
    `request body of ${size} bytes exceeds the policy limit of ${max}`,
    {
      limit: max,
    },
  );
}

async function fileSize(path: string): Promise<number> {
  const st = await fsp.stat(path).catch(() => undefined);
  if (!st?.isFile()) throw new AivaultError('invalid_request', `cannot read request body file ${path}`);
  return st.size;
}

function quote(value: string): string {
  return value.replace(/[\r\n"\\]/g, (c) => (c === '"' ? '%22' : c === '\\' ? '\\\\' : ''));
}

export async function buildRequestBody(body: PlanBody, maxBytes: number | undefined): Promise<BuiltBody> {
  switch (body.kind) {
    case 'none':
      return { body: undefined, length: 0 };
    case 'bytes':
      if (maxBytes !== undefined && body.data.byteLength > maxBytes)
        throw tooLarge(body.data.byteLength, maxBytes);
      return { body: body.data, length: body.data.byteLength, bytes: body.data };
    case 'file': {
      const size = await fileSize(body.path);
      if (maxBytes !== undefined && size > maxBytes) throw tooLarge(size, maxBytes);
      return { body: createReadStream(body.path), length: size };
    }
    case 'multipart':
      return buildMultipart(body.fields, body.files, maxBytes);
  }
}

async function buildMultipart(
  fields: readonly { name: string; value: string }[],
  files: readonly MultipartFile[],
  maxBytes: number | undefined,
): Promise<BuiltBody> {
  const boundary = `aivault-${randomBytes(16).toString('hex')}`;
  type Part = { head: Buffer; data: Buffer } | { head: Buffer; path: string; size: number };
  const parts: Part[] = [];
  for (const f of fields) {
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${quote(f.name)}"\r\n\r\n`,
    );
    parts.push({ head, data: Buffer.from(f.value, 'utf8') });
  }
  for (const f of files) {
    const filename = f.filename ?? (f.path ? basename(f.path) : 'file');
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${quote(f.name)}"; filename="${quote(filename)}"\r\n` +
        `Content-Type: ${(f.contentType ?? 'application/octet-stream').replace(/[\r\n]/g, '')}\r\n\r\n`,
    );
    if (f.contentBase64 !== undefined) parts.push({ head, data: Buffer.from(f.contentBase64, 'base64') });
    else if (f.path !== undefined) parts.push({ head, path: f.path, size: await fileSize(f.path) });
    else throw new AivaultError('invalid_request', `multipart file "${f.name}" has neither path nor content`);
  }
  const tail = Buffer.from(`--${boundary}--\r\n`);
  const crlf = Buffer.from('\r\n');
  let length = tail.length;
  for (const p of parts) length += p.head.length + ('data' in p ? p.data.length : p.size) + crlf.length;
  if (maxBytes !== undefined && length > maxBytes) throw tooLarge(length, maxBytes);
  async function* generate(): AsyncGenerator<Buffer> {
    for (const p of parts) {
      yield p.head;
      if ('data' in p) yield p.data;
      else for await (const chunk of createReadStream(p.path)) yield chunk as Buffer;
      yield crlf;
    }
    yield tail;
  }
  return {
    body: Readable.from(generate()),
    length,
    contentType: `multipart/form-data; boundary=${boundary}`,
  };
}
