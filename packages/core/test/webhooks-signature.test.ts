/** Webhook signatures and backoff (webhooks/signature.ts, pipeline/webhooks.ts). */
import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhookSignature, newWebhookSecret } from '../src/webhooks/signature.js';
import { webhookBackoffMs } from '../src/pipeline/webhooks.js';
import { WebhookTargetGuard } from '../src/webhooks/target-guard.js';

describe('webhook signatures', () => {
  it('verifies its own signature; refuses a tampered body, another secret, an old timestamp', () => {
    const secret = newWebhookSecret();
    const now = 1_800_000_000;
    const body = '{"id":"evt_1","type":"document.completed"}';
    const header = signWebhook(secret, now, body);
    expect(verifyWebhookSignature(secret, header, body, { nowSeconds: now + 10 })).toBeUndefined();
    expect(verifyWebhookSignature(secret, header, `${body} `, { nowSeconds: now })).toBe('signature mismatch');
    expect(verifyWebhookSignature(newWebhookSecret(), header, body, { nowSeconds: now })).toBe('signature mismatch');
    expect(verifyWebhookSignature(secret, header, body, { nowSeconds: now + 301 })).toBe('timestamp outside the tolerance window');
    expect(verifyWebhookSignature(secret, `${header},v1=${'0'.repeat(64)}`, body, { nowSeconds: now })).toBeUndefined();
    expect(verifyWebhookSignature(secret, undefined, body)).toBe('no signature header');
  });

  it('backs off 30 s doubling to 1 h, with 20% jitter', () => {
    const mid = () => 0.5;
    expect([1, 2, 3, 8, 20].map((n) => webhookBackoffMs(n, 30_000, 3_600_000, mid))).toEqual([30_000, 60_000, 120_000, 3_600_000, 3_600_000]);
    expect(webhookBackoffMs(1, 30_000, 3_600_000, () => 0)).toBe(24_000);
    expect(webhookBackoffMs(1, 30_000, 3_600_000, () => 1)).toBe(36_000);
  });

  it('refuses non-public targets unless allow-listed, and http except to allow-listed ones', async () => {
    const resolver = async (host: string) => [{ address: ({ 'pub.test': '93.184.216.34', 'mapped.test': '::ffff:10.1.2.3', 'v6.test': 'fd00:ec2::254' } as Record<string, string>)[host] ?? '8.8.8.8', family: host.startsWith('v6') || host.startsWith('mapped') ? 6 : 4 }];
    const guard = new WebhookTargetGuard({ resolver });
    await expect(guard.vet('https://pub.test/x')).resolves.toMatchObject({ address: '93.184.216.34' });
    await expect(guard.vet('http://pub.test/x')).rejects.toThrow(/plain http/);
    await expect(guard.vet('https://mapped.test/x')).rejects.toThrow(/private/);
    await expect(guard.vet('https://v6.test/x')).rejects.toThrow(/uniqueLocal/);
    await expect(guard.vet('https://127.0.0.1/x')).rejects.toThrow(/loopback/);
    await expect(guard.vet('https://user:pw@pub.test/x')).rejects.toThrow(/credentials/);
    await expect(guard.vet('ftp://pub.test/x')).rejects.toThrow(/http and https/);
    const local = new WebhookTargetGuard({ resolver, allowedCidrs: '127.0.0.1/32' });
    await expect(local.vet('http://127.0.0.1:9999/hook')).resolves.toMatchObject({ address: '127.0.0.1' });
    await expect(local.vet('http://127.0.0.2:9999/hook')).rejects.toThrow(/loopback/);
  });
});

describe('webhook target resolution', () => {
  it('refuses a name that does not resolve in time', async () => {
    const guard = new WebhookTargetGuard({ resolver: () => new Promise(() => undefined), resolveTimeoutMs: 50 });
    await expect(guard.vet('https://slow.test/x')).rejects.toThrow(/slow\.test does not resolve \(ETIMEOUT\)/);
  });
});
