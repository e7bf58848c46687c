/**
 * S3 key layout (DESIGN.md section 3). Keys are server-generated and start with the tenant, so a
 * tenant can only ever reach its own objects; the client's filename is metadata only.
 */
const ID = /^[A-Za-z0-9_-]{1,128}$/;

function safe(kind: string, value: string): string {
  // Ids are server-generated; this is a guard against a bug ever building a key from user text.
  if (!ID.test(value)) throw new Error(`Invalid ${kind} for an object key: ${JSON.stringify(value)}`);
  return value;
}

/** Prefix of everything stored for one document, in either bucket. */
export function documentPrefix(tenantId: string, documentId: string): string {
  return `tenants/${safe('tenantId', tenantId)}/documents/${safe('documentId', documentId)}/`;
}

/** Uploads bucket: the original PDF. */
export function sourceKey(tenantId: string, documentId: string): string {
  return `${documentPrefix(tenantId, documentId)}source.pdf`;
}

/** Uploads bucket: a chunk's input (its pages' text), written by the splitter. */
export function chunkInputKey(tenantId: string, documentId: string, index: number): string {
  return `${documentPrefix(tenantId, documentId)}chunks/${String(index).padStart(6, '0')}/input.json`;
}

/**
 * Results bucket: a chunk's result. With `claimId`, the object of one claim of the chunk: a
 * worker whose claim was taken over (paused, then resumed) writes to its own key, never over the
 * result of the claim that was counted; the chunk row names the counted one (`resultKey`).
 */
export function chunkResultKey(tenantId: string, documentId: string, index: number, claimId?: string): string {
  return `${documentPrefix(tenantId, documentId)}chunks/${String(index).padStart(6, '0')}/result${claimId ? `-${claimId}` : ''}.json`;
}

/** Results bucket: the document result (deterministic, so a repeated assembly overwrites itself). */
export function resultKey(tenantId: string, documentId: string): string {
  return `${documentPrefix(tenantId, documentId)}result.json`;
}
