/**
 * Request worker: turns a call's request, in the form its transport received it (CallRequest in
 * call-port.ts), into the envelope the pipeline runs. The main thread only moves bytes: the JSON of
 * POST /aivault/proxy is parsed here, and a `/v/{credential}/…` request is matched to a capability here,
 * against this worker's catalog snapshot (matchPassthrough picks the label only; the broker then checks
 * the envelope in full, so matching can never widen what policy allows).
 */
import { AivaultError } from '../../core/errors.js';
import type { BrokerSnapshot, Envelope, RequestContext } from '../../core/broker/types.js';
import type { RegistryIndex } from '../../core/registry/types.js';
import type { AuditInput } from '../../stores/audit/audit-log.js';
import { matchPassthrough } from '../../core/broker/passthrough.js';
import type { CallRequest, PassthroughRequest } from '../../core/threads/call-port.js';

export interface CallRequestDeps {
  readonly registry: RegistryIndex;
  catalog(): Promise<BrokerSnapshot>;
  audit(event: AuditInput): Promise<void>;
  onAuditError?(err: unknown): void;
}

/** The envelope of a POST /aivault/proxy body (a JSON object). */
function parseEnvelopeJson(bytes: ArrayBuffer): Envelope {
  let envelope: unknown;
  try {
    envelope = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new AivaultError('invalid_request', 'the proxy body must be a JSON envelope');
  }
  if (typeof envelope !== 'object' || envelope === null || Array.isArray(envelope)) {
    throw new AivaultError('invalid_request', 'the proxy body must be a JSON object');
  }
  return envelope as Envelope;
}

/**
 * The envelope for a passthrough request: the most specific capability the token grants for METHOD +
 * path on the credential's provider. No match → the error is audited (one line, as before the call
 * starts) and thrown.
 */
async function passthroughEnvelope(
  deps: CallRequestDeps,
  req: PassthroughRequest,
  body: ArrayBuffer | undefined,
  context: RequestContext,
): Promise<Envelope> {
  const m = matchPassthrough({
    snapshot: await deps.catalog(),
    registry: deps.registry,
    credentialId: req.credential,
    method: req.method,
    path: req.path,
    ...(context.token ? { tokenCapabilities: context.token.capabilities } : {}),
  });
  if (!m.ok) {
    await deps
      .audit({
        kind: 'invoke',
        credential: req.credential,
        method: req.method,
        path: req.path,
        errorCode: m.error.code,
        ...(context.clientIp ? { clientIp: context.clientIp } : {}),
        note: 'passthrough: no capability matched',
      })
      .catch((err: unknown) => deps.onAuditError?.(err));
    throw m.error;
  }
  return {
    capability: m.value.capability,
    credential: req.credential,
    request: {
      method: req.method,
      path: req.query ? `${req.path}?${req.query}` : req.path,
      headers: req.headers,
      // The transferred bytes as they are: a base64 encode, a regex check of the text and a decode per
      // call were three passes over every request body (large prompts most of all).
      ...(body && body.byteLength > 0 ? { bodyBytes: new Uint8Array(body) } : {}),
    },
  } as Envelope;
}

/** The envelope a call runs, from whichever form its transport handed over. */
export async function envelopeOf(
  deps: CallRequestDeps,
  req: CallRequest,
  context: RequestContext,
): Promise<Envelope> {
  if ('envelope' in req) return req.envelope;
  if ('envelopeJson' in req) return parseEnvelopeJson(req.envelopeJson);
  return passthroughEnvelope(deps, req.passthrough, req.body, context);
}
