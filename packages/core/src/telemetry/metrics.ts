/**
 * Prometheus metrics (prom-client), one registry per process, served at /metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The metrics every docorch process may record. */
export interface Metrics {
  registry: Registry;
  /** Stream records handled, by event type and outcome. */
  records: Counter<'type' | 'outcome'>;
  /** Chunk analyses running now. */
  analysesInFlight: Gauge;
  /** Chunk analyses, by outcome. */
  analyses: Counter<'outcome'>;
  /** Duration of chunk analyses. */
  analysisSeconds: Histogram;
  /** Shards this worker consumes. */
  shardsHeld: Gauge;
  /** Documents submitted, by mode. */
  documents: Counter<'mode'>;
}

/** Creates a registry with default process metrics and docorch's own. */
export function createMetrics(service: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    records: new Counter({ name: 'docorch_records_total', help: 'Stream records handled', labelNames: ['type', 'outcome'], registers: [registry] }),
    analysesInFlight: new Gauge({ name: 'docorch_analyses_in_flight', help: 'Chunk analyses running now', registers: [registry] }),
    analyses: new Counter({ name: 'docorch_analyses_total', help: 'Chunk analyses', labelNames: ['outcome'], registers: [registry] }),
    analysisSeconds: new Histogram({
      name: 'docorch_analysis_seconds',
      help: 'Duration of chunk analyses',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    shardsHeld: new Gauge({ name: 'docorch_shards_held', help: 'Shards this worker consumes', registers: [registry] }),
    documents: new Counter({ name: 'docorch_documents_total', help: 'Documents submitted', labelNames: ['mode'], registers: [registry] }),
  };
}
