import { describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, loadConfig } from '../src/index.js';

describe('loadConfig', () => {
  it('has a default for every knob and picks the local analyzer without a Gemini key', () => {
    const config = loadConfig({});
    expect(config.PORT).toBe(3000);
    expect(config.HOST).toBe('127.0.0.1');
    expect(config.analyzer).toBe('local');
    expect(loadConfig({ GEMINI_API_KEY: 'k' }).analyzer).toBe('gemini');
  });
  it('fails with a message naming each bad variable', () => {
    expect(() => loadConfig({ PORT: 'abc', S3_ENDPOINT: 'not a url' })).toThrow(ConfigError);
    try {
      loadConfig({ PORT: 'abc', MAX_UPLOAD_BYTES: '-5' });
    } catch (err) {
      expect((err as ConfigError).message).toMatch(/PORT="abc"/);
      expect((err as ConfigError).message).toMatch(/MAX_UPLOAD_BYTES="-5"/);
    }
  });
  it('documents every variable', () => {
    for (const line of describeConfig()) expect(line).toMatch(/^[A-Z0-9_]+: \S/);
  });
});
