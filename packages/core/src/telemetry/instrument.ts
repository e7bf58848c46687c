/**
 * Observability around the analyzer, in one place for the sync path (API) and the async path
 * (worker): a span per chunk analysis and per reduce step, the chunk latency histogram, analyses
 * by outcome and in flight; and the model-call hook (a span and a metric per HTTP call to the model).
 */
import { trace } from '@opentelemetry/api';
import type { Analyzer } from '../analysis/types.js';
import type { ModelCallEvent } from '../analysis/gemini/gemini-analyzer.js';
import type { Metrics } from './metrics.js';
import { withSpan } from './tracing.js';

/** The analyzer with spans and metrics around each call. */
export function instrumentAnalyzer(analyzer: Analyzer, metrics: Metrics): Analyzer {
  return {
    name: analyzer.name,
    async analyzeChunk(input, options) {
      const attributes = { 'docorch.tenant_id': input.tenantId, 'docorch.document_id': input.documentId, 'docorch.chunk_index': input.chunkIndex };
      return withSpan('chunk.analyze', { attributes }, async () => {
        const stop = metrics.analysisSeconds.startTimer();
        metrics.analysesInFlight.inc();
        let outcome = 'error';
        try {
          const out = await analyzer.analyzeChunk(input, options);
          outcome = 'ok';
          return out;
        } finally {
          metrics.analysesInFlight.dec();
          metrics.analyses.inc({ outcome });
          stop();
        }
      });
    },
    reduceSummaries(input, options) {
      return withSpan('summary.reduce', {}, () => analyzer.reduceSummaries(input, options));
    },
    close: () => analyzer.close(),
  };
}

/** The model-call hook: counts each HTTP call by outcome and records it as a span of the active trace. */
export function modelCallRecorder(metrics: Metrics): (event: ModelCallEvent) => void {
  return (event) => {
    metrics.modelCalls.inc({ operation: event.operation, outcome: event.outcome });
    metrics.modelCallSeconds.observe(event.durationMs / 1000);
    // The hook is told after the call; the span is dated back to its start.
    const span = trace.getTracer('docorch').startSpan(`model.${event.operation}`, {
      startTime: Date.now() - event.durationMs,
      attributes: {
        'docorch.model.attempt': event.attempt,
        'docorch.model.outcome': event.outcome,
        ...(event.httpStatus !== undefined ? { 'http.response.status_code': event.httpStatus } : {}),
        ...(event.usage ? { 'docorch.model.input_tokens': event.usage.inputTokens, 'docorch.model.output_tokens': event.usage.outputTokens } : {}),
      },
    });
    span.end();
  };
}
