/**
 * AWS regions for registry providers. A registry AWS provider (aws-bedrock, aws-s3) names its hosts with
 * the signing region as one DNS label (`bedrock-runtime.us-east-1.amazonaws.com`). A credential created
 * with `--aws-region eu-west-1` stores `params.region`; then every host of that provider — the
 * credential's hosts, the capability hosts it may reach and the pinning check — is the same host with
 * that one label swapped, and the signer signs for that region. Nothing else can change: the region must
 * look like an AWS region, and only a label equal to the provider's default region under `amazonaws.com`
 * is replaced, so a tampered `params.region` can at worst pick another region of the same AWS service.
 * Pure.
 */
import type { AuthSpec } from '../registry/types.js';

const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;

export function isAwsRegion(value: unknown): value is string {
  return typeof value === 'string' && REGION.test(value);
}

interface Regional {
  readonly auth: AuthSpec;
  readonly params?: Readonly<Record<string, string>>;
}

/**
 * The region a credential re-targets its AWS registry hosts to, when it differs from the auth's own
 * region; undefined otherwise (not AWS, no override, or an override that is not a region name).
 */
export function regionOverride(credential: Regional): { from: string; to: string } | undefined {
  if (!('aws_sigv4' in credential.auth)) return undefined;
  const to = credential.params?.region;
  const from = credential.auth.aws_sigv4.region;
  if (to === undefined || to === from || !isAwsRegion(to) || !isAwsRegion(from)) return undefined;
  return { from, to };
}

/** `svc.<from>.amazonaws.com` → `svc.<to>.amazonaws.com`; any other host is returned unchanged. */
export function regionalHost(host: string, override: { from: string; to: string } | undefined): string {
  if (!override || !host.endsWith('.amazonaws.com')) return host;
  const labels = host.split('.');
  const i = labels.indexOf(override.from);
  if (i <= 0 || i !== labels.length - 3) return host;
  labels[i] = override.to;
  return labels.join('.');
}

/** Hosts as seen by one credential (capability allow.hosts or provider hosts). */
export function regionalHosts(
  hosts: readonly string[],
  override: { from: string; to: string } | undefined,
): readonly string[] {
  return override ? hosts.map((h) => regionalHost(h, override)) : hosts;
}
