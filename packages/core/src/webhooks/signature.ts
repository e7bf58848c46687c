/**
 * Webhook signatures (docs/webhooks.md): HMAC-SHA256 with the tenant's secret over
 * `${timestamp}.${body}`, sent as `Docorch-Signature: t=<unix seconds>,v1=<hex>`. The timestamp is
 * signed so that a captured request cannot be replayed outside the receiver's tolerance window.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** The header carrying the signature. */
export const SIGNATURE_HEADER = 'Docorch-Signature';

/** Default replay window of {@link verifyWebhookSignature}: 5 minutes. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** A new per-tenant signing secret (`whsec_` + 32 random bytes, base64url). */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

/** The `Docorch-Signature` value of `body` sent at `timestampSeconds`. */
export function signWebhook(secret: string, timestampSeconds: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestampSeconds}.${body}`).digest('hex');
  return `t=${timestampSeconds},v1=${mac}`;
}

/**
 * Verifies a `Docorch-Signature` header against the raw body: a v1 signature must match and the
 * timestamp must be within `toleranceSeconds` of `nowSeconds`. Several `v1=` entries may be present
 * (during a secret rotation); one matching is enough.
 * @returns undefined when valid, else why not
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | undefined,
  body: string,
  options: { toleranceSeconds?: number; nowSeconds?: number } = {},
): string | undefined {
  if (!header) return 'no signature header';
  const parts = header.split(',').map((p) => p.trim().split('='));
  const t = Number(parts.find(([k]) => k === 't')?.[1]);
  const signatures = parts.filter(([k]) => k === 'v1').map(([, v]) => v ?? '');
  if (!Number.isInteger(t) || signatures.length === 0) return 'malformed signature header';
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - t) > (options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) return 'timestamp outside the tolerance window';
  const expected = Buffer.from(createHmac('sha256', secret).update(`${t}.${body}`).digest('hex'));
  const ok = signatures.some((s) => s.length === expected.length && timingSafeEqual(Buffer.from(s), expected));
  return ok ? undefined : 'signature mismatch';
}
