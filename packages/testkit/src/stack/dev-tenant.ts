/** The local stack's dev tenant, seeded by `npm start` and by the compose init step alike. */
import type { TenantStore } from '@docorch/core';

/** Creates (or keeps) the `dev` tenant with the default plan and binds `key` to it. */
export async function seedDevTenant(tenants: TenantStore, key: string): Promise<void> {
  await tenants.upsertTenant({ tenantId: 'dev', name: 'Local development tenant' });
  await tenants.importKey('dev', key, 'dev');
}
