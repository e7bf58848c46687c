import { randomBytes } from 'node:crypto';
import { createAwsClients, loadConfig, TenantStore, type Plan } from '@docorch/core';

/** Creates a tenant with a random id (and a plan) and returns its id and a new API key. */
export async function seedTenant(prefix = 't', plan: Plan = {}, env: NodeJS.ProcessEnv = process.env): Promise<{ tenantId: string; apiKey: string }> {
  const config = loadConfig(env);
  const aws = createAwsClients(config);
  try {
    const tenantId = `${prefix}-${randomBytes(4).toString('hex')}`;
    const tenants = new TenantStore(aws.doc, config.TENANTS_TABLE);
    await tenants.createTenant({ tenantId, name: tenantId, plan });
    const { key } = await tenants.createKey(tenantId, { name: 'test' });
    return { tenantId, apiKey: key };
  } finally {
    aws.destroy();
  }
}

/** POSTs a PDF as multipart to /v1/documents. */
export async function upload(
  baseUrl: string,
  apiKey: string | undefined,
  bytes: Uint8Array,
  fields: Record<string, string> = {},
  filename = 'doc.pdf',
): Promise<Response> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.set('file', new Blob([bytes], { type: 'application/pdf' }), filename);
  return fetch(`${baseUrl}/v1/documents`, {
    method: 'POST',
    body: form,
    headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
    signal: AbortSignal.timeout(120_000),
  });
}

/** Asserts a problem+json answer and returns its body. */
export async function problemBody(res: Response): Promise<{ status: number; code: string; detail: string; title: string; type: string }> {
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('application/problem+json')) {
    throw new Error(`expected problem+json, got ${type} ${res.status}: ${await res.text()}`);
  }
  return (await res.json()) as { status: number; code: string; detail: string; title: string; type: string };
}

export function randomId(): string {
  return randomBytes(6).toString('hex');
}
