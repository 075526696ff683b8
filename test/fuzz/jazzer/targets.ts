/**
 * Jazzer.js entry points (one bundle, chosen with `-f <name>`). Each maps libFuzzer's bytes onto one parser
 * on the untrusted boundary (or a loader of files an attacker may have edited) and calls the SAME property oracle the fast-check run uses (../targets.ts), so
 * a property is written once and explored two ways: grammar-biased random inputs there, coverage- and
 * comparison-guided mutation here.
 *
 * Bundled to CommonJS by runner.ts because Jazzer.js 2.x instruments modules through the CJS require hook;
 * the bundle inlines msgpackr, so the frame target's coverage feedback reaches into the decoder itself.
 */
import { parseEnvelope } from '../../../src/core/broker/envelope.js';
import { fuzzBrokerFile, fuzzEnvelope, fuzzFrame, fuzzHost, fuzzPath, fuzzRoute } from '../targets.js';
import { CANARY_SEED_ID } from './seeds.js';

function json(data: Buffer): unknown {
  try {
    return JSON.parse(data.toString('utf8')) as unknown;
  } catch {
    return undefined; // not JSON: the HTTP route and CLI reject it before parseEnvelope is reached
  }
}

/** Raw bytes as a socket frame: the daemon decodes whatever a peer writes. */
export function frame(data: Buffer): void {
  fuzzFrame(new Uint8Array(data));
}

/** JSON text as an invoke envelope (HTTP body, CLI --json). */
export function envelope(data: Buffer): void {
  const value = json(data);
  if (value !== undefined) fuzzEnvelope(value);
}

/** UTF-8 text as a request path (with optional query). */
export function path(data: Buffer): void {
  fuzzPath(data.toString('utf8'));
}

/** "<pattern>\n<host>": a credential host pattern and a request authority. */
export function host(data: Buffer): void {
  const text = data.toString('utf8');
  const nl = text.indexOf('\n');
  if (nl < 0) fuzzHost(text, text);
  else fuzzHost(text.slice(0, nl), text.slice(nl + 1));
}

/** "<request target>\n<Authorization>\n<x-api-key>": what an HTTP caller controls on a route. */
export function route(data: Buffer): void {
  const [url = '', authorization = '', apiKey = ''] = data.toString('utf8').split('\n');
  fuzzRoute(url, authorization, apiKey);
}

/** JSON text as broker.json on disk (hand-edited or tampered). */
export function broker(data: Buffer): void {
  const value = json(data);
  if (value !== undefined) fuzzBrokerFile(value);
}

/**
 * A planted bug behind the real envelope parser: proves, in every test run, that the harness finds a
 * crashing input (any valid `canary/…` capability other than the seed's, so the mutated input must still
 * pass the parser's validation), writes it out and fails — so a fuzz run that silently stopped fuzzing
 * cannot pass.
 */
export function canary(data: Buffer): void {
  const r = parseEnvelope(json(data));
  if (r.ok && r.value.capability.startsWith('canary/') && r.value.capability !== CANARY_SEED_ID) {
    throw new Error('planted bug reached');
  }
}
