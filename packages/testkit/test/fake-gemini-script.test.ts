/**
 * Scripted outcomes per matching request (`enqueueFor`): a test can fail one chunk, by its pages,
 * whatever order the chunks' requests arrive in; other requests fall through to `enqueue`'s
 * script and the failure mix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGemini, type FakeGemini } from '../src/fake-gemini/index.js';

let fake: FakeGemini;
beforeAll(async () => {
  fake = await startFakeGemini();
});
afterAll(async () => {
  await fake?.close();
});

async function call(page: number): Promise<{ status: number; text: string | undefined }> {
  const res = await fetch(`${fake.url}/v1beta/models/gemini-2.5-flash:generateContent`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-goog-api-key': 'k' },
    body: JSON.stringify({
      contents: [{ role: 'user', parts: [{ text: `<page number="${page}">Acme Corporation opened an office in Berlin. Sales rose by 4%.</page>` }] }],
    }),
  });
  const body = (await res.json()) as { candidates?: Array<{ content?: { parts?: Array<{ text?: string }> } }> };
  return { status: res.status, text: body.candidates?.[0]?.content?.parts?.[0]?.text };
}

describe('fake Gemini enqueueFor', () => {
  it('gives matching requests their scripted outcomes in order, and leaves others alone', async () => {
    fake.enqueueFor((r) => r.pages.includes(7), 'unavailable', 'malformedJson');
    fake.enqueue('rateLimit');
    expect((await call(3)).status).toBe(429); // not page 7: the general script
    expect((await call(7)).status).toBe(503);
    expect((await call(4)).status).toBe(200); // scripts used up for others: the (empty) mix
    const malformed = await call(7);
    expect(malformed.status).toBe(200);
    expect(() => JSON.parse(malformed.text ?? '')).toThrow();
    const ok = await call(7); // page 7's script is used up
    expect(ok.status).toBe(200);
    expect(() => JSON.parse(ok.text ?? '')).not.toThrow();
    expect(fake.log.map((r) => [r.pages[0], r.outcome])).toEqual([
      [3, 'rateLimit'],
      [7, 'unavailable'],
      [4, 'ok'],
      [7, 'malformedJson'],
      [7, 'ok'],
    ]);
  });
});
