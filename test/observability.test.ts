/**
 * Observability on the local stack: one async document's trace crosses the API, the workers and
 * the aggregator (W3C trace context in the stream records and on the job row), its trace id is
 * in each process's log lines about it, and the spans reach an OTLP/HTTP collector (a receiver on
 * 127.0.0.1 speaking the OTLP JSON wire format, configured by the standard OTEL_* variables).
 * Then /metrics of the API, a worker and the aggregator expose the listed metrics, non-zero.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGemini, startPipeline, type FakeGemini, type Pipeline } from '@docorch/testkit';
import { submitGenerated, waitFor, waitForTerminal } from './helpers.js';

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
}

/** A minimal OTLP/HTTP JSON traces receiver. */
async function startOtlpReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; close(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const hex = (id: string | undefined) => (!id ? '' : /^[0-9a-f]+$/i.test(id) ? id.toLowerCase() : Buffer.from(id, 'base64').toString('hex'));
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as {
          resourceSpans: Array<{
            resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
            scopeSpans: Array<{ spans: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string }> }>;
          }>;
        };
        for (const rs of body.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
          for (const ss of rs.scopeSpans) {
            for (const s of ss.spans) spans.push({ service, traceId: hex(s.traceId), spanId: hex(s.spanId), parentSpanId: hex(s.parentSpanId), name: s.name });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, spans, close: () => new Promise((r) => server.close(() => r())) };
}

/**
 * Parsed JSON log lines of a process about a document's work (bound with its documentId; status
 * polls that merely name it in their URL are requests of their own, with their own traces).
 */
function linesAbout(output: readonly string[], documentId: string): Array<Record<string, unknown>> {
  return output
    .filter((l) => l.includes(documentId))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    })
    .filter((l) => l.documentId === documentId);
}

/** `name{labels} value` samples of a Prometheus text page. */
function samples(text: string, name: string): Array<{ labels: string; value: number }> {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .map((l) => {
      const value = Number(l.slice(l.lastIndexOf(' ') + 1));
      return { labels: l.slice(name.length, l.lastIndexOf(' ')), value };
    });
}
const total = (text: string, name: string, filter = '') =>
  samples(text, name)
    .filter((s) => s.labels.includes(filter))
    .reduce((a, s) => a + s.value, 0);

describe('observability across the API, the workers and the aggregator', () => {
  let pipeline: Pipeline;
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let fake: FakeGemini;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    fake = await startFakeGemini({ latencyMs: 20 });
    pipeline = await startPipeline({
      workers: 2,
      shards: 2,
      prefix: 'obs',
      waitForBalance: true,
      env: {
        LOG_LEVEL: 'info',
        ANALYZER: 'gemini',
        GEMINI_API_KEY: 'test',
        GEMINI_BASE_URL: fake.url,
        GEMINI_RPM: '0',
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      },
    });
  });
  afterAll(async () => {
    await pipeline?.stop();
    await fake?.close();
    await receiver?.close();
  });

  it('carries one trace id through every process of a document, in logs and spans, and counts it', { timeout: 180_000 }, async () => {
    const id = await submitGenerated(pipeline, 24, { pagesPerChunk: '4' });
    const final = await waitForTerminal(pipeline, id, 120_000);
    expect(final.status).toBe('completed');

    // The API's lines about the document carry its trace id; so do the workers' and the aggregator's.
    const apiLines = linesAbout(pipeline.api.output, id);
    const traceIds = new Set(apiLines.map((l) => l.traceId).filter(Boolean));
    expect(traceIds.size, `API lines about ${id}: ${JSON.stringify(apiLines.slice(0, 3))}`).toBe(1);
    const [traceId] = [...traceIds] as string[];
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    const workerLines = pipeline.workers.flatMap((w) => linesAbout(w.output, id));
    expect(workerLines.length).toBeGreaterThan(0);
    for (const line of workerLines) expect(line.traceId, JSON.stringify(line)).toBe(traceId);
    // The aggregator logs the assembly right after the write that finished the job, and its output
    // reaches this process through a pipe: the line may arrive a moment after the status.
    const aggregatorLines = await waitFor('the aggregator\'s lines about the document', () => {
      const lines = linesAbout(pipeline.aggregator.output, id);
      return lines.length > 0 ? lines : undefined;
    }, 10_000, 50);
    for (const line of aggregatorLines) expect(line.traceId, JSON.stringify(line)).toBe(traceId);

    // The spans reached the collector (batched: give the exporters their second).
    const deadline = Date.now() + 15_000;
    const ofTrace = () => receiver.spans.filter((s) => s.traceId === traceId);
    while (!ofTrace().some((s) => s.name === 'document.assemble') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    const spans = ofTrace();
    const services = new Set(spans.map((s) => s.service));
    expect([...services].sort()).toEqual(['docorch-aggregator', 'docorch-api', 'docorch-worker']);
    const names = new Set(spans.map((s) => s.name));
    for (const name of ['POST /v1/documents', 'document.submitted', 'chunk.ready', 'chunk.analyze', 'model.analyzeChunk', 'document.assemble', 'model.reduceSummaries']) {
      expect(names, `span ${name} in ${[...names].join(', ')}`).toContain(name);
    }
    // Every chunk was analysed in this trace, each under its record's span.
    expect(spans.filter((s) => s.name === 'chunk.analyze').length).toBeGreaterThanOrEqual(6);
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    for (const s of spans.filter((x) => x.name === 'chunk.analyze')) expect(byId.get(s.parentSpanId)?.name).toBe('chunk.ready');

    // Metrics, with non-zero values after the run.
    const scrape = async (url: string) => (await fetch(`${url}/metrics`)).text();
    const api = await scrape(pipeline.api.baseUrl);
    expect(total(api, 'docorch_documents_total', 'mode="async"')).toBeGreaterThanOrEqual(1);
    expect(total(api, 'docorch_http_responses_total', 'status="2xx"')).toBeGreaterThan(0);
    for (const name of ['docorch_throttled_total', 'docorch_documents_finished_total']) expect(api).toContain(`# TYPE ${name}`);

    const workers = await Promise.all(pipeline.workers.map((w) => scrape(w.baseUrl)));
    const sum = (name: string, filter = '') => workers.reduce((a, text) => a + total(text, name, filter), 0);
    // At least once per chunk: a record redelivered after a lease moved may be analysed again.
    expect(sum('docorch_analyses_total', 'outcome="ok"')).toBeGreaterThanOrEqual(6);
    expect(sum('docorch_analysis_seconds_count')).toBeGreaterThanOrEqual(6);
    expect(sum('docorch_model_calls_total', 'outcome="ok"')).toBeGreaterThanOrEqual(6);
    expect(sum('docorch_model_call_seconds_count')).toBeGreaterThanOrEqual(6);
    expect(sum('docorch_records_total', 'type="chunk.ready"')).toBeGreaterThanOrEqual(6);
    expect(sum('docorch_shards_held')).toBe(2);
    for (const text of workers) {
      for (const name of ['docorch_circuit_state', 'docorch_dead_letters_total', 'docorch_iterator_age_ms', 'docorch_records_behind']) {
        expect(text).toContain(`# TYPE ${name}`);
      }
    }
    expect(workers.some((text) => samples(text, 'docorch_iterator_age_ms').length > 0)).toBe(true);

    const aggregator = await scrape(pipeline.aggregator.baseUrl);
    expect(total(aggregator, 'docorch_assemblies_total', 'outcome="completed"')).toBe(1);
    expect(total(aggregator, 'docorch_documents_finished_total', 'status="completed"')).toBe(1);
    expect(total(aggregator, 'docorch_assembly_seconds_count')).toBe(1);
    expect(total(aggregator, 'docorch_model_calls_total', 'operation="reduceSummaries"')).toBeGreaterThanOrEqual(1);
    expect(aggregator).toContain('# TYPE docorch_iterator_age_ms');
  });
});
