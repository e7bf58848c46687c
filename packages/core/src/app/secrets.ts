/**
 * Secrets a process reads at start rather than from its environment: the Gemini API key of the
 * aggregator Lambda (ECS injects it into the containers' environment; Lambda has no such field).
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ConfigError, type Config } from '../config.js';

/**
 * Returns the config with GEMINI_API_KEY read from GEMINI_API_KEY_SECRET_ARN when only the ARN is
 * set. The ARN may end in `:KEY::` to pick one key of a JSON secret (ECS's `valueFrom` syntax).
 * @throws ConfigError when the secret cannot be read or has no such key.
 */
export async function resolveSecrets(config: Config, client?: SecretsManagerClient): Promise<Config> {
  if (config.GEMINI_API_KEY || !config.GEMINI_API_KEY_SECRET_ARN) return config;
  const parts = config.GEMINI_API_KEY_SECRET_ARN.split(':');
  const secretId = parts.slice(0, 7).join(':');
  const jsonKey = parts[7] || undefined;
  const sm = client ?? new SecretsManagerClient({ region: config.AWS_REGION });
  try {
    const out = await sm.send(new GetSecretValueCommand({ SecretId: secretId }));
    let value = out.SecretString;
    if (value !== undefined && jsonKey) value = (JSON.parse(value) as Record<string, string | undefined>)[jsonKey];
    if (!value) throw new Error(jsonKey ? `no key ${jsonKey} in the secret` : 'the secret has no string value');
    return { ...config, GEMINI_API_KEY: value };
  } catch (err) {
    throw new ConfigError([`GEMINI_API_KEY_SECRET_ARN=${JSON.stringify(secretId)}: ${(err as Error).message}`]);
  } finally {
    if (!client) sm.destroy();
  }
}
