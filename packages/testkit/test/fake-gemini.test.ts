/**
 * The fake Gemini server speaks the real wire format: its answers go through @google/genai's own
 * response handling (the SDK the analyzer uses) and come out as the SDK's typed objects and errors.
 */
import { ApiError, GoogleGenAI, Type, type GenerateContentResponse } from '@google/genai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { maxInWindow, startFakeGemini, type FakeGemini } from '../src/fake-gemini/index.js';

const MODEL = 'gemini-2.5-flash';
let fake: FakeGemini;
let ai: GoogleGenAI;

const chunkText = [
  '<page number="3">',
  'Acme Corporation signed a supply agreement with Globex Ltd in Berlin on 12 March 2024. Jane Smith, the chief executive, called it a great success and a strong basis for growth.',
  'The contract is worth $4.5 million over three years. Prices rise by 3% per year.',
  '</page>',
  '<page number="4">',
  'Jane Smith will report to the board of Acme Corporation. Contact: legal@acme.example or https://acme.example/contracts.',
  '</page>',
].join('\n');

const jsonSchema = {
  type: 'object',
  properties: {
    summary: { type: 'string' },
    keyPoints: { type: 'array', items: { type: 'string' }, maxItems: 2 },
    entities: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          text: { type: 'string' },
          type: { type: 'string', enum: ['PERSON', 'ORGANIZATION', 'LOCATION', 'DATE', 'MONEY', 'PERCENT', 'EMAIL', 'URL', 'OTHER'] },
          count: { type: 'integer', minimum: 1 },
          pages: { type: 'array', items: { type: 'integer', minimum: 3, maximum: 4 } },
        },
        required: ['text', 'type', 'count', 'pages'],
      },
    },
    sentiment: {
      type: 'object',
      properties: { label: { type: 'string', enum: ['positive', 'negative', 'neutral', 'mixed'] }, score: { type: 'number', minimum: -1, maximum: 1 } },
      required: ['label', 'score'],
    },
  },
  required: ['summary', 'keyPoints', 'entities', 'sentiment'],
};

function generate(parts: Array<{ text: string } | { inlineData: { mimeType: string; data: string } }>, extra: Record<string, unknown> = {}) {
  return ai.models.generateContent({
    model: MODEL,
    contents: [{ role: 'user', parts }],
    config: {
      systemInstruction: 'Answer with JSON.',
      responseMimeType: 'application/json',
      responseJsonSchema: jsonSchema,
      automaticContinuation: false,
      ...extra,
    },
  });
}

async function apiError(promise: Promise<unknown>): Promise<ApiError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

beforeAll(async () => {
  fake = await startFakeGemini({ seed: 7 });
  ai = new GoogleGenAI({ apiKey: 'test-key', vertexai: false, httpOptions: { baseUrl: fake.url, apiVersion: 'v1beta' } });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.configure({ failures: null, failAll: false, latencyMs: 0, quota: null, apiKey: null, models: null, retryDelayMs: 1000 });
  fake.clearLog();
});

describe('fake Gemini server: success answers', () => {
  it('answers in the real response shape, parsed by @google/genai', async () => {
    const res: GenerateContentResponse = await generate([{ text: 'Analyse:' }, { text: chunkText }]);
    expect(res.candidates).toHaveLength(1);
    const candidate = res.candidates?.[0];
    expect(candidate?.finishReason).toBe('STOP');
    expect(candidate?.content?.role).toBe('model');
    expect(candidate?.safetyRatings?.length).toBeGreaterThan(0);
    expect(res.modelVersion).toBe(MODEL);
    expect(res.responseId).toMatch(/^[\w-]{10,}$/);
    const usage = res.usageMetadata;
    expect(usage?.promptTokenCount).toBeGreaterThan(0);
    expect(usage?.candidatesTokenCount).toBeGreaterThan(0);
    expect(usage?.totalTokenCount).toBe((usage?.promptTokenCount ?? 0) + (usage?.candidatesTokenCount ?? 0));

    // The SDK's text accessor yields the JSON; it follows the requested schema.
    const out = JSON.parse(res.text ?? '') as {
      summary: string;
      keyPoints: string[];
      entities: Array<{ text: string; type: string; count: number; pages: number[] }>;
      sentiment: { label: string; score: number };
    };
    expect(Object.keys(out).sort()).toEqual(['entities', 'keyPoints', 'sentiment', 'summary']);
    expect(out.summary).toContain('Acme Corporation');
    expect(out.keyPoints.length).toBeLessThanOrEqual(2);
    const byText = new Map(out.entities.map((e) => [e.text, e]));
    expect(byText.get('Jane Smith')).toMatchObject({ type: 'PERSON', count: 2, pages: [3, 4] });
    expect(byText.get('Acme Corporation')).toMatchObject({ type: 'ORGANIZATION', pages: [3, 4] });
    expect(byText.get('Berlin')).toMatchObject({ type: 'LOCATION' });
    expect(byText.get('legal@acme.example')).toMatchObject({ type: 'EMAIL', pages: [4] });
    expect([...byText.values()].some((e) => e.type === 'MONEY' && e.text.startsWith('$4.5'))).toBe(true);
    expect([...byText.values()].some((e) => e.type === 'PERCENT')).toBe(true);
    expect([...byText.values()].some((e) => e.type === 'DATE' && e.text === '12 March 2024')).toBe(true);
    for (const e of out.entities) for (const p of e.pages) expect([3, 4]).toContain(p);
    expect(out.sentiment.label).toBe('positive');

    const [entry] = fake.log;
    expect(entry).toMatchObject({ apiVersion: 'v1beta', model: MODEL, outcome: 'ok', status: 200, pages: [3, 4], clientAborted: false });
    expect(entry?.promptTokens).toBe(usage?.promptTokenCount);
    expect(entry?.candidatesTokens).toBe(usage?.candidatesTokenCount);
  });

  it('honours the requested properties of a responseJsonSchema and the OpenAPI-style responseSchema', async () => {
    const only = await generate([{ text: chunkText }], {
      responseJsonSchema: { type: 'object', properties: { summary: { type: 'string' } }, required: ['summary'] },
    });
    expect(Object.keys(JSON.parse(only.text ?? '{}') as object)).toEqual(['summary']);

    const openApi = await ai.models.generateContent({
      model: MODEL,
      contents: chunkText,
      config: {
        responseMimeType: 'application/json',
        responseSchema: {
          type: Type.OBJECT,
          properties: { keyPoints: { type: Type.ARRAY, items: { type: Type.STRING }, maxItems: '1' } },
        },
      },
    });
    const parsed = JSON.parse(openApi.text ?? '{}') as { keyPoints: string[] };
    expect(Object.keys(parsed)).toEqual(['keyPoints']);
    expect(parsed.keyPoints.length).toBeLessThanOrEqual(1);
  });

  it('answers reduce requests from the parts and points, and serves v1 too', async () => {
    const v1 = new GoogleGenAI({ apiKey: 'k', vertexai: false, httpOptions: { baseUrl: fake.url, apiVersion: 'v1' } });
    const res = await v1.models.generateContent({
      model: MODEL,
      contents: '<part index="1">\nThe first part covers the contract.\n</part>\n<part index="2">\nThe second part covers the prices.\n</part>\n<point>Price rises 3%.</point>',
    });
    const out = JSON.parse(res.text ?? '{}') as { summary: string; keyPoints: string[] };
    expect(out.summary).toBe('The first part covers the contract. The second part covers the prices.');
    expect(out.keyPoints).toEqual(['Price rises 3%.']);
    expect(fake.log[0]?.apiVersion).toBe('v1');
  });

  it('logs inline media parts with their mime type', async () => {
    const png = Buffer.from('89504e470d0a1a0a', 'hex').toString('base64');
    await generate([{ text: '<page number="5" scanned="true">' }, { inlineData: { mimeType: 'image/png', data: png } }, { text: '</page>' }]);
    expect(fake.log[0]?.inlineData).toEqual([{ mimeType: 'image/png', bytes: 8 }]);
    expect(fake.log[0]?.pages).toEqual([5]);
  });
});

describe('fake Gemini server: failures', () => {
  it('429 carries RetryInfo retryDelay in the error body the SDK surfaces', async () => {
    fake.configure({ retryDelayMs: 2000 });
    fake.enqueue('rateLimit');
    const err = await apiError(generate([{ text: chunkText }]));
    expect(err.status).toBe(429);
    const body = JSON.parse(err.message) as { error: { code: number; status: string; details: Array<Record<string, unknown>> } };
    expect(body.error.code).toBe(429);
    expect(body.error.status).toBe('RESOURCE_EXHAUSTED');
    expect(body.error.details).toContainEqual({ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '2s' });
  });

  it('500, 503, bad key and unknown model answer like Google', async () => {
    fake.enqueue('serverError', 'unavailable');
    expect((await apiError(generate([{ text: 'x' }]))).status).toBe(500);
    const unavailable = await apiError(generate([{ text: 'x' }]));
    expect(unavailable.status).toBe(503);
    expect(unavailable.message).toContain('UNAVAILABLE');

    fake.configure({ apiKey: 'the-right-key' });
    const badKey = await apiError(generate([{ text: 'x' }]));
    expect(badKey.status).toBe(400);
    expect(badKey.message).toContain('API_KEY_INVALID');
    fake.configure({ apiKey: null, models: ['gemini-other'] });
    expect((await apiError(generate([{ text: 'x' }]))).status).toBe(404);
  });

  it('malformed JSON and schema violations are 200s with bad text', async () => {
    fake.enqueue('malformedJson', 'invalidSchema');
    const malformed = await generate([{ text: chunkText }]);
    expect(malformed.candidates?.[0]?.finishReason).toBe('STOP');
    expect(() => JSON.parse(malformed.text ?? '')).toThrow();
    const invalid = await generate([{ text: chunkText }]);
    expect(JSON.parse(invalid.text ?? '')).toEqual({ unexpected: true });
  });

  it('safety blocks: prompt feedback without candidates, or a candidate finishing with SAFETY', async () => {
    fake.enqueue('safetyPrompt', 'safetyCandidate');
    const prompt = await generate([{ text: chunkText }]);
    expect(prompt.promptFeedback?.blockReason).toBe('SAFETY');
    expect(prompt.candidates).toBeUndefined();
    expect(prompt.text).toBeUndefined();
    expect(prompt.usageMetadata?.promptTokenCount).toBeGreaterThan(0);
    const candidate = await generate([{ text: chunkText }]);
    expect(candidate.candidates?.[0]?.finishReason).toBe('SAFETY');
    expect(candidate.candidates?.[0]?.safetyRatings?.some((r) => r.blocked)).toBe(true);
    expect(candidate.text).toBeUndefined();
  });

  it('a hang never answers; the client times out and the log shows the abort', async () => {
    fake.enqueue('hang');
    const started = Date.now();
    const err = await generate([{ text: 'x' }], { abortSignal: AbortSignal.timeout(300) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await expect.poll(() => fake.log[0]?.clientAborted).toBe(true);
    expect(fake.log[0]).toMatchObject({ outcome: 'hang' });
    expect(fake.log[0]?.status).toBeUndefined();
  });

  it('failAll answers 503 to everything until switched off', async () => {
    fake.configure({ failAll: true });
    expect((await apiError(generate([{ text: 'x' }]))).status).toBe(503);
    fake.configure({ failAll: false });
    await expect(generate([{ text: 'x' }])).resolves.toBeDefined();
    expect(fake.log.map((r) => r.outcome)).toEqual(['failAll', 'ok']);
  });

  it('the failure mix is drawn from the seed: same seed, same outcomes', async () => {
    const mix = { rateLimit: 0.2, serverError: 0.1, unavailable: 0.2, malformedJson: 0.1, safetyBlock: 0.1 };
    const runs: string[][] = [];
    for (let i = 0; i < 2; i++) {
      const f = await startFakeGemini({ seed: 42, failures: mix });
      const client = new GoogleGenAI({ apiKey: 'k', vertexai: false, httpOptions: { baseUrl: f.url } });
      for (let n = 0; n < 40; n++) await client.models.generateContent({ model: MODEL, contents: 'Some text here.' }).catch(() => undefined);
      runs.push(f.log.map((r) => r.outcome));
      await f.close();
    }
    expect(runs[0]).toEqual(runs[1]);
    const ok = runs[0]?.filter((o) => o === 'ok').length ?? 0;
    expect(ok).toBeGreaterThan(4);
    expect(ok).toBeLessThan(30);
  });

  it('latency knob delays answers (fixed and range)', async () => {
    fake.configure({ latencyMs: 150 });
    let t = Date.now();
    await generate([{ text: 'x' }]);
    expect(Date.now() - t).toBeGreaterThanOrEqual(140);
    fake.configure({ latencyMs: [50, 60] });
    t = Date.now();
    await generate([{ text: 'x' }]);
    expect(Date.now() - t).toBeGreaterThanOrEqual(45);
  });
});

describe('fake Gemini server: rate accounting', () => {
  it('maxInWindow counts the busiest half-open window', () => {
    expect(maxInWindow([], 1000)).toBe(0);
    expect(maxInWindow([0, 999, 1000, 1999], 1000)).toBe(2);
    expect(maxInWindow([5, 1, 3, 2, 4], 3)).toBe(3);
  });

  it('a server-side quota answers 429 with the time until a slot frees', async () => {
    fake.configure({ quota: { requests: 3, windowMs: 2000 } });
    const outcomes: number[] = [];
    for (let i = 0; i < 5; i++) {
      outcomes.push(await generate([{ text: 'x' }]).then(() => 200, (e: unknown) => (e as ApiError).status));
    }
    expect(outcomes).toEqual([200, 200, 200, 429, 429]);
    const body = fake.log[3];
    expect(body?.outcome).toBe('quota');
    expect(fake.ratePerWindow(2000, (r) => r.status === 200)).toBe(3);
    expect(fake.ratePerWindow(2000)).toBe(5);
  });

  it('totals sum the usage of delivered answers; the admin routes expose log and knobs', async () => {
    fake.enqueue('ok', 'unavailable', 'ok');
    const usages: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await generate([{ text: chunkText }]).catch(() => undefined);
      if (res) usages.push(res.usageMetadata?.promptTokenCount ?? 0);
    }
    const totals = fake.totals();
    expect(totals).toMatchObject({ requests: 3, billedCalls: 2, byOutcome: { ok: 2, unavailable: 1 } });
    expect(totals.promptTokens).toBe(usages.reduce((a, b) => a + b, 0));

    const config = await fetch(`${fake.url}/_fake/config`, { method: 'POST', body: JSON.stringify({ latencyMs: 5, failAll: true }) });
    expect(await config.json()).toMatchObject({ latencyMs: 5, failAll: true });
    expect(fake.knobs().failAll).toBe(true);
    const log = (await (await fetch(`${fake.url}/_fake/log`)).json()) as unknown[];
    expect(log).toHaveLength(3);
  });
});
