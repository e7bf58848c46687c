/**
 * Prometheus metrics (prom-client), one registry per process, served at /metrics by the API, the
 * worker and the local aggregator, and recorded where the thing they count happens (the pipeline
 * steps get them from the PipelineContext). On AWS the same registry is published to CloudWatch as
 * Embedded Metric Format log lines (emf.ts).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The metrics every docorch process may record (each process records the ones its steps reach). */
export interface Metrics {
  registry: Registry;
  /** Documents admitted, by mode (sync, async). */
  documents: Counter<'mode'>;
  /** Documents that reached a terminal status, by status. */
  documentsFinished: Counter<'status'>;
  /** Stream records handled, by event type and outcome. */
  records: Counter<'type' | 'outcome'>;
  /** Chunk analyses running now. */
  analysesInFlight: Gauge;
  /** Chunk analyses, by outcome (ok, error). */
  analyses: Counter<'outcome'>;
  /** Duration of chunk analyses (the chunk latency; p50/p95 from its buckets). */
  analysisSeconds: Histogram;
  /** Model HTTP calls, by operation and outcome (`ok` or the error class: THROTTLED, TIMEOUT, ...). */
  modelCalls: Counter<'operation' | 'outcome'>;
  /** Duration of model HTTP calls. */
  modelCallSeconds: Histogram;
  /** Model circuit breaker state: 0 closed, 1 half-open, 2 open. */
  circuitState: Gauge;
  /** HTTP answers 429, by reason (the problem code). */
  throttled: Counter<'code'>;
  /** Key rows read to authenticate (the DynamoDB cost of authentication). */
  authLookups: Counter;
  /** HTTP answers, by status class (2xx, 4xx, 5xx). */
  httpResponses: Counter<'status'>;
  /** Records sent to the dead-letter store, by source (stream, aggregator) and code. */
  deadLetters: Counter<'source' | 'code'>;
  /** Stale documents the reconciler drove on, by the status it found them in and what it did. */
  reconciled: Counter<'status' | 'action'>;
  webhookAttempts: Counter<'outcome'>;
  /** Documents the reconciler failed with DEADLINE_EXCEEDED, by the status they were stuck in. */
  documentsExpired: Counter<'status'>;
  /** How far behind the tip of its stream each shard's reader is, in ms (Kinesis MillisBehindLatest; DynamoDB Streams: age of the last record). */
  iteratorAgeMs: Gauge<'stream' | 'shard'>;
  /** Records read from the stream and not yet done (checkpoint pending), per process. */
  recordsBehind: Gauge<'stream'>;
  /** Shards this worker consumes. */
  shardsHeld: Gauge;
  /** Document assemblies, by outcome (the final status, or error). */
  assemblies: Counter<'outcome'>;
  /** Duration of document assemblies. */
  assemblySeconds: Histogram;
}

/** Circuit states as numbers, for the gauge. */
export const CIRCUIT_STATE_VALUE = { closed: 0, 'half-open': 1, open: 2 } as const;

const latencyBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Creates a registry with default process metrics and docorch's own, labelled with `service`. */
export function createMetrics(service: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    documents: new Counter({ name: 'docorch_documents_total', help: 'Documents admitted, by mode', labelNames: ['mode'], registers }),
    documentsFinished: new Counter({
      name: 'docorch_documents_finished_total',
      help: 'Documents that reached a terminal status, by status',
      labelNames: ['status'],
      registers,
    }),
    records: new Counter({ name: 'docorch_records_total', help: 'Stream records handled', labelNames: ['type', 'outcome'], registers }),
    analysesInFlight: new Gauge({ name: 'docorch_analyses_in_flight', help: 'Chunk analyses running now', registers }),
    analyses: new Counter({ name: 'docorch_analyses_total', help: 'Chunk analyses', labelNames: ['outcome'], registers }),
    analysisSeconds: new Histogram({ name: 'docorch_analysis_seconds', help: 'Duration of chunk analyses', buckets: latencyBuckets, registers }),
    modelCalls: new Counter({
      name: 'docorch_model_calls_total',
      help: 'Model HTTP calls, by operation and outcome (ok or the error class)',
      labelNames: ['operation', 'outcome'],
      registers,
    }),
    modelCallSeconds: new Histogram({ name: 'docorch_model_call_seconds', help: 'Duration of model HTTP calls', buckets: latencyBuckets, registers }),
    circuitState: new Gauge({ name: 'docorch_circuit_state', help: 'Model circuit breaker: 0 closed, 1 half-open, 2 open', registers }),
    throttled: new Counter({ name: 'docorch_throttled_total', help: 'HTTP 429 answers, by problem code', labelNames: ['code'], registers }),
    authLookups: new Counter({ name: 'docorch_auth_lookups_total', help: 'API key rows read from DynamoDB to authenticate', registers }),
    httpResponses: new Counter({ name: 'docorch_http_responses_total', help: 'HTTP answers, by status class', labelNames: ['status'], registers }),
    webhookAttempts: new Counter({ name: 'docorch_webhook_attempts_total', help: 'Webhook delivery attempts, by outcome (delivered, retry, failed, refused)', labelNames: ['outcome'], registers }),
    reconciled: new Counter({ name: 'docorch_reconciled_total', help: 'Stale documents the reconciler drove on, by status found and action', labelNames: ['status', 'action'], registers }),
    documentsExpired: new Counter({ name: 'docorch_documents_expired_total', help: 'Documents failed with DEADLINE_EXCEEDED, by the status they were in', labelNames: ['status'], registers }),
    deadLetters: new Counter({
      name: 'docorch_dead_letters_total',
      help: 'Records sent to the dead-letter store, by source and code',
      labelNames: ['source', 'code'],
      registers,
    }),
    iteratorAgeMs: new Gauge({
      name: 'docorch_iterator_age_ms',
      help: 'How far each shard reader is behind the tip of its stream, in ms',
      labelNames: ['stream', 'shard'],
      registers,
    }),
    recordsBehind: new Gauge({ name: 'docorch_records_behind', help: 'Records read and not yet done, per process', labelNames: ['stream'], registers }),
    shardsHeld: new Gauge({ name: 'docorch_shards_held', help: 'Shards this worker consumes', registers }),
    assemblies: new Counter({ name: 'docorch_assemblies_total', help: 'Document assemblies, by outcome', labelNames: ['outcome'], registers }),
    assemblySeconds: new Histogram({ name: 'docorch_assembly_seconds', help: 'Duration of document assemblies', buckets: latencyBuckets, registers }),
  };
}
