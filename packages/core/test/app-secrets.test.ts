/**
 * resolveSecrets: the aggregator Lambda reads the Gemini key from Secrets Manager. The real SDK
 * client talks to a stand-in on 127.0.0.1 that answers GetSecretValue in the service's JSON
 * protocol, so the request the client sends (target, SecretId) is checked as sent.
 */
import http from 'node:http';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, resolveSecrets } from '../src/index.js';

const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:docorch/gemini-AbCdEf';

describe('resolveSecrets', () => {
  let server: http.Server;
  let client: SecretsManagerClient;
  const requests: Array<{ target: string; body: { SecretId: string } }> = [];
  const secrets: Record<string, string> = { [ARN]: 'plain-key', [`${ARN}-json`]: '{"apiKey":"json-key"}' };

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        const body = JSON.parse(raw) as { SecretId: string };
        requests.push({ target: String(req.headers['x-amz-target']), body });
        const value = secrets[body.SecretId];
        res.writeHead(value ? 200 : 400, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(value ? { ARN: body.SecretId, SecretString: value } : { __type: 'ResourceNotFoundException', message: 'Secrets Manager can not find the specified secret.' }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    client = new SecretsManagerClient({ region: 'us-east-1', endpoint: `http://127.0.0.1:${port}`, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  });
  afterAll(async () => {
    client?.destroy();
    await new Promise((r) => server.close(r));
  });

  it('reads a plain secret and selects gemini', async () => {
    const config = loadConfig({ GEMINI_API_KEY_SECRET_ARN: ARN });
    expect(config.analyzer).toBe('gemini');
    const resolved = await resolveSecrets(config, client);
    expect(resolved.GEMINI_API_KEY).toBe('plain-key');
    expect(requests.at(-1)).toEqual({ target: 'secretsmanager.GetSecretValue', body: { SecretId: ARN } });
  });

  it('reads one key of a JSON secret (the :KEY:: suffix) from the secret itself', async () => {
    const resolved = await resolveSecrets(loadConfig({ GEMINI_API_KEY_SECRET_ARN: `${ARN}-json:apiKey::` }), client);
    expect(resolved.GEMINI_API_KEY).toBe('json-key');
    expect(requests.at(-1)?.body.SecretId).toBe(`${ARN}-json`);
  });

  it('keeps a key given directly, and names the variable when the secret is unreadable', async () => {
    const before = requests.length;
    expect((await resolveSecrets(loadConfig({ GEMINI_API_KEY: 'direct', GEMINI_API_KEY_SECRET_ARN: ARN }), client)).GEMINI_API_KEY).toBe('direct');
    expect(requests.length).toBe(before);
    await expect(resolveSecrets(loadConfig({ GEMINI_API_KEY_SECRET_ARN: `${ARN}-missing` }), client)).rejects.toThrow(ConfigError);
    await expect(resolveSecrets(loadConfig({ GEMINI_API_KEY_SECRET_ARN: `${ARN}-missing` }), client)).rejects.toThrow(/GEMINI_API_KEY_SECRET_ARN/);
  });
});
