/**
 * Where the client commands find the API and the key: flags, then the environment (DOCORCH_URL,
 * DOCORCH_API_KEY), then a profile in the credentials file (`docorch configure` writes it, mode
 * 0600; a file others can read is refused, since it holds API keys).
 */
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** The resolved connection. */
export interface Connection {
  url: string;
  apiKey: string;
  /** Where each came from, for error messages. */
  source: string;
}

interface CredentialsFile {
  profiles: Record<string, { url?: string; apiKey?: string }>;
}

/** The credentials file: DOCORCH_CONFIG, else ~/.config/docorch/credentials.json. */
export function credentialsPath(env: NodeJS.ProcessEnv): string {
  return env.DOCORCH_CONFIG ?? path.join(env.XDG_CONFIG_HOME ?? path.join(os.homedir(), '.config'), 'docorch', 'credentials.json');
}

async function readCredentials(file: string): Promise<CredentialsFile | undefined> {
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch {
    return undefined;
  }
  if ((mode & 0o077) !== 0) {
    throw new Error(`${file} has mode ${(mode & 0o777).toString(8)}: it holds API keys, so it must be readable by you alone (chmod 600 ${file})`);
  }
  return JSON.parse(await readFile(file, 'utf8')) as CredentialsFile;
}

/** Resolves the connection; throws with what is missing. */
export async function resolveConnection(flags: { url?: string | undefined; apiKey?: string | undefined; profile?: string | undefined }, env: NodeJS.ProcessEnv): Promise<Connection> {
  const profileName = flags.profile ?? env.DOCORCH_PROFILE ?? 'default';
  const file = credentialsPath(env);
  const profile = (await readCredentials(file))?.profiles[profileName];
  const url = flags.url ?? env.DOCORCH_URL ?? profile?.url;
  const apiKey = flags.apiKey ?? env.DOCORCH_API_KEY ?? profile?.apiKey;
  if (!url || !apiKey) {
    throw new Error(
      `no ${!url ? 'API URL' : 'API key'}: pass --url and --api-key, set DOCORCH_URL and DOCORCH_API_KEY, or run "docorch configure --url URL --api-key KEY" (profile "${profileName}" in ${file})`,
    );
  }
  const source = flags.url || flags.apiKey ? 'flags' : env.DOCORCH_URL || env.DOCORCH_API_KEY ? 'environment' : `profile "${profileName}"`;
  return { url, apiKey, source };
}

/** Writes a profile (the file and its folder made private). */
export async function writeProfile(env: NodeJS.ProcessEnv, name: string, values: { url: string; apiKey: string }): Promise<string> {
  const file = credentialsPath(env);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const current = (await readCredentials(file).catch(() => undefined)) ?? { profiles: {} };
  current.profiles[name] = values;
  await writeFile(file, `${JSON.stringify(current, null, 2)}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return file;
}
