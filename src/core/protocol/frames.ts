/**
 * The aivaultd wire protocol: one msgpack-encoded frame per binary WebSocket message, versioned (`v: 1`).
 * Owns encoding and strict decoding only; no I/O, no secrets. Decoding never throws: malformed input is an
 * `invalid_request` Result, never a crash. See docs/protocol.md.
 *
 * Packr choice: `useRecords: false` (plain msgpack maps, no shared structures). Shared structures make
 * the encoder and decoder stateful per connection and couple client and daemon builds; our frames are
 * small envelopes where plain maps cost little, and plain msgpack stays readable by any msgpack library.
 */
import { Packr } from 'msgpackr';
import { AivaultError, isErrorCode, ok, type ErrorCode, type ErrorDetails, type Result } from '../errors.js';
import type { Envelope, HeaderList } from '../broker/types.js';
import { msgpackBoundsProblem } from './msgpack-bounds.js';
import { isTimings, type Timings } from '../threads/server-timing.js';

export const PROTOCOL_VERSION = 1 as const;

/** Largest frame the daemon accepts (request bodies travel inline in `invoke`). */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** Context a socket client may state; tokens and consumers are never set by socket clients. */
export interface WireContext {
  workspaceId?: string;
  groupId?: string;
  clientIp?: string;
}

/** Frame ids are client-chosen positive integers, unique among that connection's in-flight calls. */
export type FrameId = number;

// client → daemon
export interface InvokeFrame {
  v: 1;
  type: 'invoke';
  id: FrameId;
  envelope: Envelope;
  context: WireContext;
  stream: boolean;
  timeoutMs?: number;
  /**
   * Ask for the daemon's per-stage timings (`timing` on head/end/response frames). Opt-in, so a client
   * that predates the field never receives one (its strict decoder would refuse the frame).
   */
  timing?: boolean;
}
export interface CancelFrame {
  v: 1;
  type: 'cancel';
  id: FrameId;
}
export interface PingFrame {
  v: 1;
  type: 'ping';
  id?: FrameId;
}
/** Operator frames, forwarded to the crypto worker. */
export interface UnlockFrame {
  v: 1;
  type: 'unlock';
  id: FrameId;
  passphrase: string;
}
export interface LockFrame {
  v: 1;
  type: 'lock';
  id: FrameId;
}
export interface StatusFrame {
  v: 1;
  type: 'status';
  id: FrameId;
}
/** Operator frame: a one-time dashboard login code (answered on the main thread; refused to callers). */
export interface DashboardLoginFrame {
  v: 1;
  type: 'dashboard-login';
  id: FrameId;
  /** Operator authentication on a passphrase vault (user mode). */
  passphrase?: string;
}
/** A CLI command for the daemon to run (src/cli/command-table.ts says which; the daemon gates by role). */
export type CommandOptValue = string | boolean | string[];
export interface CommandFrame {
  v: 1;
  type: 'command';
  id: FrameId;
  /** `module.export`, e.g. `secrets.create`. */
  command: string;
  args: string[];
  opts: Record<string, CommandOptValue>;
  /** Render the human output with colour. */
  color: boolean;
  /** Operator authentication on a passphrase vault. */
  passphrase?: string;
}
export type ClientFrame =
  | InvokeFrame
  | CancelFrame
  | PingFrame
  | UnlockFrame
  | LockFrame
  | StatusFrame
  | CommandFrame
  | DashboardLoginFrame;

// daemon → client
export interface ResponseFrame {
  v: 1;
  type: 'response';
  id: FrameId;
  status: number;
  headers: HeaderList;
  body: Uint8Array;
  /** Reflected secret values the daemon replaced in this response (absent when none). */
  scrubbed?: number;
  /** Per-stage milliseconds (only when the invoke frame asked for `timing`). */
  timing?: Timings;
}
export interface HeadFrame {
  v: 1;
  type: 'head';
  id: FrameId;
  status: number;
  headers: HeaderList;
  /** Per-stage milliseconds until the head (only when the invoke frame asked for `timing`). */
  timing?: Timings;
}
export interface ChunkFrame {
  v: 1;
  type: 'chunk';
  id: FrameId;
  data: Uint8Array;
}
export interface EndFrame {
  v: 1;
  type: 'end';
  id: FrameId;
  /** Reflected secret values the daemon replaced in this response (absent when none). */
  scrubbed?: number;
  /** Per-stage milliseconds, total to the end of the body (only when asked for, see InvokeFrame). */
  timing?: Timings;
}
export interface ErrorFrame {
  v: 1;
  type: 'error';
  id?: FrameId;
  error: ErrorCode;
  message: string;
  details?: ErrorDetails;
}
export interface PongFrame {
  v: 1;
  type: 'pong';
  id?: FrameId;
}
/** Answer to an operator frame (unlock/lock/status). Never contains key material. */
export interface ResultFrame {
  v: 1;
  type: 'result';
  id: FrameId;
  data: Record<string, string | number | boolean | null>;
}
export type DaemonFrame =
  ResponseFrame | HeadFrame | ChunkFrame | EndFrame | ErrorFrame | PongFrame | ResultFrame;

export type Frame = ClientFrame | DaemonFrame;

/** Distributive Omit so each union member keeps its own fields. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type FrameInput = DistributiveOmit<Frame, 'v'>;

const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' });

/** Encode a frame (adds `v`). */
export function encodeFrame(frame: FrameInput): Uint8Array {
  return packr.pack({ v: PROTOCOL_VERSION, ...frame });
}

/** msgpack of the map `{v, type: 'chunk', id, data: <bin header>}` up to the data's first byte. */
const CHUNK_PREFIX = Uint8Array.from([
  // map16 of 4 entries, as msgpackr writes every object (it reserves the count's room up front).
  0xde,
  0x00,
  0x04,
  0xa1,
  0x76,
  PROTOCOL_VERSION,
  0xa4,
  ...Buffer.from('type'),
  0xa5,
  ...Buffer.from('chunk'),
  0xa2,
  ...Buffer.from('id'),
]);
const DATA_KEY = Uint8Array.from([0xa4, ...Buffer.from('data')]);
/** msgpack type bytes for an 8-, 16- and 32-bit size: unsigned integers, and bin headers. */
const UINT = [0xcc, 0xcd, 0xce] as const;
const BIN = [0xc4, 0xc5, 0xc6] as const;

/** Write type byte + big-endian `n` (n < 2^32) in the smallest of the three widths; returns the end. */
function sized(buf: Buffer, at: number, n: number, types: readonly [number, number, number]): number {
  if (n <= 0xff) return buf.writeUInt8(n, buf.writeUInt8(types[0], at));
  if (n <= 0xffff) return buf.writeUInt16BE(n, buf.writeUInt8(types[1], at));
  return buf.writeUInt32BE(n, buf.writeUInt8(types[2], at));
}

/**
 * A chunk frame as two parts, [msgpack up to the data, the data itself], whose concatenation is exactly
 * `encodeFrame({type: 'chunk', id, data})`. Why by hand: msgpackr copies every body chunk into its own
 * buffer, and on a large streamed body those copies (64 KiB each, external memory) made the main thread's
 * V8 run a full mark-compact every ~70 ms (bench/PROFILE.md). The socket writes the parts as fragments of
 * one WebSocket message, so the data is copied once, into uWS's send buffer.
 */
export function encodeChunkFrameParts(id: FrameId, data: Uint8Array): [Uint8Array, Uint8Array] {
  if (id > 0xffffffff) {
    // Never in practice (ids count up from 1 per connection); msgpackr's own encoding stays the reference.
    const whole = encodeFrame({ type: 'chunk', id, data });
    return [whole, new Uint8Array(0)];
  }
  const head = Buffer.allocUnsafe(CHUNK_PREFIX.byteLength + 5 + DATA_KEY.byteLength + 5);
  head.set(CHUNK_PREFIX, 0);
  let at =
    id < 0x80 ? head.writeUInt8(id, CHUNK_PREFIX.byteLength) : sized(head, CHUNK_PREFIX.byteLength, id, UINT);
  head.set(DATA_KEY, at);
  at = sized(head, at + DATA_KEY.byteLength, data.byteLength, BIN);
  return [head.subarray(0, at), data];
}

function invalid(message: string): Result<never> {
  return { ok: false, error: new AivaultError('invalid_request', message) };
}

type Obj = Record<string, unknown>;

function isPlainObject(value: unknown): value is Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    return false;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function onlyKeys(obj: Obj, allowed: readonly string[], what: string): string | undefined {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) return `${what}: unknown field "${key.slice(0, 40)}"`;
  }
  return undefined;
}

function isId(value: unknown): value is FrameId {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function isOptCount(value: unknown): value is number | undefined {
  return value === undefined || (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0);
}

function isOptString(value: unknown): boolean {
  return value === undefined || typeof value === 'string';
}

function isHeaderList(value: unknown): value is HeaderList {
  return (
    Array.isArray(value) &&
    value.every(
      (h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && typeof h[1] === 'string',
    )
  );
}

function isStatus(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 100 && value <= 999;
}

function toBytes(value: unknown): Uint8Array | undefined {
  if (value instanceof Uint8Array) return value;
  return undefined;
}

const FIELDS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  invoke: ['v', 'type', 'id', 'envelope', 'context', 'stream', 'timeoutMs', 'timing'],
  cancel: ['v', 'type', 'id'],
  ping: ['v', 'type', 'id'],
  unlock: ['v', 'type', 'id', 'passphrase'],
  lock: ['v', 'type', 'id'],
  status: ['v', 'type', 'id'],
  'dashboard-login': ['v', 'type', 'id', 'passphrase'],
  command: ['v', 'type', 'id', 'command', 'args', 'opts', 'color', 'passphrase'],
  response: ['v', 'type', 'id', 'status', 'headers', 'body', 'scrubbed', 'timing'],
  head: ['v', 'type', 'id', 'status', 'headers', 'timing'],
  chunk: ['v', 'type', 'id', 'data'],
  end: ['v', 'type', 'id', 'scrubbed', 'timing'],
  error: ['v', 'type', 'id', 'error', 'message', 'details'],
  pong: ['v', 'type', 'id'],
  result: ['v', 'type', 'id', 'data'],
});

const CLIENT_TYPES: ReadonlySet<string> = new Set([
  'invoke',
  'cancel',
  'ping',
  'unlock',
  'lock',
  'status',
  'command',
  'dashboard-login',
]);

const isOptValue = (v: unknown): v is CommandOptValue =>
  typeof v === 'string' ||
  typeof v === 'boolean' ||
  (Array.isArray(v) && v.every((x) => typeof x === 'string'));

/** Validate an already-unpacked value as a frame of a known type. */
export function validateFrame(raw: unknown): Result<Frame> {
  if (!isPlainObject(raw)) return invalid('frame must be a msgpack map');
  if (raw.v !== PROTOCOL_VERSION) {
    return typeof raw.v === 'number'
      ? invalid(`unsupported protocol version ${raw.v} (this daemon speaks ${PROTOCOL_VERSION})`)
      : invalid('frame has no protocol version field "v"');
  }
  const type = raw.type;
  if (typeof type !== 'string' || !Object.hasOwn(FIELDS, type)) {
    return invalid(`unknown frame type "${String(type).slice(0, 40)}"`);
  }
  const extra = onlyKeys(raw, FIELDS[type] ?? [], `${type} frame`);
  if (extra) return invalid(extra);
  const needsId = !['ping', 'pong', 'error'].includes(type);
  if (needsId ? !isId(raw.id) : raw.id !== undefined && !isId(raw.id)) {
    return invalid(`${type} frame: "id" must be a positive integer`);
  }
  switch (type) {
    case 'invoke': {
      if (!isPlainObject(raw.envelope)) return invalid('invoke frame: "envelope" must be a map');
      const ctx = raw.context === undefined ? {} : raw.context;
      if (!isPlainObject(ctx)) return invalid('invoke frame: "context" must be a map');
      const bad = onlyKeys(ctx, ['workspaceId', 'groupId', 'clientIp'], 'invoke frame context');
      if (bad) return invalid(bad);
      if (!isOptString(ctx.workspaceId) || !isOptString(ctx.groupId) || !isOptString(ctx.clientIp)) {
        return invalid('invoke frame: context fields must be strings');
      }
      if (typeof raw.stream !== 'boolean') return invalid('invoke frame: "stream" must be a boolean');
      if (
        raw.timeoutMs !== undefined &&
        !(typeof raw.timeoutMs === 'number' && Number.isInteger(raw.timeoutMs) && raw.timeoutMs > 0)
      ) {
        return invalid('invoke frame: "timeoutMs" must be a positive integer');
      }
      const frame: InvokeFrame = {
        v: 1,
        type: 'invoke',
        id: raw.id as number,
        envelope: raw.envelope as unknown as Envelope,
        context: ctx as WireContext,
        stream: raw.stream,
      };
      if (raw.timeoutMs !== undefined) frame.timeoutMs = raw.timeoutMs as number;
      if (raw.timing !== undefined && typeof raw.timing !== 'boolean') {
        return invalid('invoke frame: "timing" must be a boolean');
      }
      if (raw.timing === true) frame.timing = true;
      return ok(frame);
    }
    case 'command': {
      if (typeof raw.command !== 'string' || !/^[a-z]+\.[A-Za-z]+$/.test(raw.command)) {
        return invalid('command frame: "command" must be module.name');
      }
      if (!Array.isArray(raw.args) || !raw.args.every((a) => typeof a === 'string')) {
        return invalid('command frame: "args" must be a list of strings');
      }
      if (!isPlainObject(raw.opts) || !Object.values(raw.opts).every(isOptValue)) {
        return invalid('command frame: "opts" must map names to strings, booleans or string lists');
      }
      if (typeof raw.color !== 'boolean') return invalid('command frame: "color" must be a boolean');
      if (!isOptString(raw.passphrase)) return invalid('command frame: "passphrase" must be a string');
      const frame: CommandFrame = {
        v: 1,
        type: 'command',
        id: raw.id as number,
        command: raw.command,
        args: raw.args as string[],
        opts: raw.opts as Record<string, CommandOptValue>,
        color: raw.color,
      };
      if (typeof raw.passphrase === 'string') frame.passphrase = raw.passphrase;
      return ok(frame);
    }
    case 'dashboard-login': {
      if (!isOptString(raw.passphrase))
        return invalid('dashboard-login frame: "passphrase" must be a string');
      const frame: DashboardLoginFrame = { v: 1, type, id: raw.id as number };
      if (typeof raw.passphrase === 'string') frame.passphrase = raw.passphrase;
      return ok(frame);
    }
    case 'unlock':
      if (typeof raw.passphrase !== 'string') return invalid('unlock frame: "passphrase" must be a string');
      return ok({ v: 1, type: 'unlock', id: raw.id as number, passphrase: raw.passphrase });
    case 'response':
    case 'head': {
      if (!isStatus(raw.status)) return invalid(`${type} frame: "status" must be an HTTP status`);
      if (!isHeaderList(raw.headers)) return invalid(`${type} frame: "headers" must be [name, value] pairs`);
      if (raw.timing !== undefined && !isTimings(raw.timing)) {
        return invalid(`${type} frame: "timing" must map stages to milliseconds`);
      }
      const timing = raw.timing === undefined ? {} : { timing: raw.timing as Timings };
      if (type === 'head') {
        return ok({ v: 1, type, id: raw.id as number, status: raw.status, headers: raw.headers, ...timing });
      }
      const body = toBytes(raw.body);
      if (!body) return invalid('response frame: "body" must be binary');
      if (!isOptCount(raw.scrubbed)) return invalid('response frame: "scrubbed" must be a count');
      const frame: ResponseFrame = {
        v: 1,
        type,
        id: raw.id as number,
        status: raw.status,
        headers: raw.headers,
        body,
        ...timing,
      };
      if (raw.scrubbed !== undefined) frame.scrubbed = raw.scrubbed;
      return ok(frame);
    }
    case 'end': {
      if (!isOptCount(raw.scrubbed)) return invalid('end frame: "scrubbed" must be a count');
      if (raw.timing !== undefined && !isTimings(raw.timing)) {
        return invalid('end frame: "timing" must map stages to milliseconds');
      }
      const frame: EndFrame = { v: 1, type, id: raw.id as number };
      if (raw.timing !== undefined) frame.timing = raw.timing as Timings;
      if (raw.scrubbed !== undefined) frame.scrubbed = raw.scrubbed;
      return ok(frame);
    }
    case 'chunk': {
      const data = toBytes(raw.data);
      if (!data) return invalid('chunk frame: "data" must be binary');
      return ok({ v: 1, type, id: raw.id as number, data });
    }
    case 'error': {
      if (!isErrorCode(raw.error)) return invalid('error frame: unknown error code');
      if (typeof raw.message !== 'string') return invalid('error frame: "message" must be a string');
      if (raw.details !== undefined && !isPlainObject(raw.details)) {
        return invalid('error frame: "details" must be a map');
      }
      const frame: ErrorFrame = { v: 1, type, error: raw.error, message: raw.message };
      if (raw.id !== undefined) frame.id = raw.id as number;
      if (raw.details !== undefined) frame.details = raw.details as ErrorDetails;
      return ok(frame);
    }
    case 'result':
      if (!isPlainObject(raw.data)) return invalid('result frame: "data" must be a map');
      return ok({ v: 1, type, id: raw.id as number, data: raw.data as ResultFrame['data'] });
    case 'ping':
    case 'pong': {
      const frame: PingFrame | PongFrame = { v: 1, type };
      if (raw.id !== undefined) frame.id = raw.id as number;
      return ok(frame);
    }
    default:
      // cancel, lock, status: only v/type/id.
      return ok({ v: 1, type, id: raw.id as number } as Frame);
  }
}

/** Decode and validate one frame. Never throws. */
export function decodeFrame(bytes: Uint8Array): Result<Frame> {
  if (bytes.byteLength === 0) return invalid('empty frame');
  if (bytes.byteLength > MAX_FRAME_BYTES) return invalid(`frame exceeds ${MAX_FRAME_BYTES} bytes`);
  const problem = msgpackBoundsProblem(bytes);
  if (problem !== undefined) return invalid(`frame is not valid msgpack: ${problem}`);
  let raw: unknown;
  try {
    raw = packr.unpack(bytes);
  } catch {
    return invalid('frame is not valid msgpack');
  }
  return validateFrame(raw);
}

/** Decode a frame that must come from a client (the daemon's side). */
export function decodeClientFrame(bytes: Uint8Array): Result<ClientFrame> {
  const res = decodeFrame(bytes);
  if (!res.ok) return res;
  if (!CLIENT_TYPES.has(res.value.type)) return invalid(`"${res.value.type}" is not a client frame`);
  return res as Result<ClientFrame>;
}

/** Decode a frame that must come from the daemon (the client's side). */
export function decodeDaemonFrame(bytes: Uint8Array): Result<DaemonFrame> {
  const res = decodeFrame(bytes);
  if (!res.ok) return res;
  if (CLIENT_TYPES.has(res.value.type)) return invalid(`"${res.value.type}" is not a daemon frame`);
  return res as Result<DaemonFrame>;
}

/** Best-effort id of a frame that failed validation, so the error can be routed to its call. */
export function peekFrameId(bytes: Uint8Array): FrameId | undefined {
  if (msgpackBoundsProblem(bytes) !== undefined) return undefined;
  try {
    const raw = packr.unpack(bytes) as unknown;
    if (isPlainObject(raw) && isId(raw.id)) return raw.id;
  } catch {
    // not msgpack at all
  }
  return undefined;
}
