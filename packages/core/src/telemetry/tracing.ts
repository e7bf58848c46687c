/**
 * OpenTelemetry tracing. One document is one trace: the API request that admits it, the split,
 * every chunk's analysis and model call, and the assembly. The W3C trace context crosses process
 * boundaries in two places: the stream records' envelope (`traceparent`) and the job row
 * (`traceparent`, read by the aggregator, which a DynamoDB Stream record starts).
 *
 * Spans are always created (so the trace id is in every log line of a document, see
 * logger.ts), and exported only when OTEL_TRACES_EXPORTER names an exporter: `otlp` (the OTLP/HTTP
 * exporter, configured by the standard OTEL_EXPORTER_OTLP_* variables, which it reads itself) or
 * `console`. Off by default.
 */
import { context, propagation, trace, SpanStatusCode, type Context, type Span, type SpanKind } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  AlwaysOnSampler,
  SimpleSpanProcessor,
  TracerProvider,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';

/** The exporters {@link initTracing} can add (OTEL_TRACES_EXPORTER, comma-separated). */
export type TracesExporter = 'otlp' | 'console' | 'none';

/** Options of {@link initTracing}. */
export interface TracingOptions {
  /** `service.name` of every span. */
  service: string;
  /** Exporters [OTEL_TRACES_EXPORTER]. @defaultValue ['none'] */
  exporters?: readonly TracesExporter[];
  /** Extra processors (tests: an in-memory exporter). @defaultValue none */
  processors?: SpanProcessor[];
}

/** The process's tracing, as set up by {@link initTracing}. */
export interface Tracing {
  /** Exports what is buffered (a Lambda calls it before returning). */
  flush(): Promise<void>;
  /** Flushes and stops exporting. */
  shutdown(): Promise<void>;
}

let installed: { provider: TracerProvider; tracing: Tracing } | undefined;

/**
 * Sets up the process's tracer provider, context manager and W3C propagator, once per process
 * (a second call returns the first set-up).
 */
export function initTracing(options: TracingOptions): Tracing {
  if (installed) return installed.tracing;
  const processors: SpanProcessor[] = [...(options.processors ?? [])];
  const exporters = new Set(options.exporters ?? ['none']);
  // The OTLP exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _PROTOCOL itself.
  if (exporters.has('otlp')) processors.push(new BatchSpanProcessor({ exporter: new OTLPTraceExporter(), scheduledDelayMillis: 1_000 }));
  if (exporters.has('console')) processors.push(new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() }));
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': `docorch-${options.service}` }),
    sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
    spanProcessors: processors,
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  const tracing: Tracing = {
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
  installed = { provider, tracing };
  return tracing;
}

const tracer = () => trace.getTracer('docorch');

/** The W3C `traceparent` of the active span, to carry on a record or a row; undefined outside a span. */
export function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}

/** The context a `traceparent` (and `tracestate`) continues; the active context when absent. */
export function contextFrom(carrier: { traceparent?: string | undefined; tracestate?: string | undefined } | undefined): Context {
  if (!carrier?.traceparent) return context.active();
  return propagation.extract(context.active(), carrier);
}

/** The active span's ids, for log lines; empty outside a span. */
export function activeTraceIds(): { traceId?: string; spanId?: string } {
  const span = trace.getActiveSpan();
  const ids = span?.spanContext();
  if (!ids || !trace.isSpanContextValid(ids)) return {};
  return { traceId: ids.traceId, spanId: ids.spanId };
}

/** Options of {@link withSpan}. */
export interface SpanOptions {
  /** Attributes set at the start. */
  attributes?: Record<string, string | number | boolean | undefined>;
  /** Parent: a carried `traceparent`; the active span when absent. */
  parent?: { traceparent?: string | undefined; tracestate?: string | undefined } | undefined;
  kind?: SpanKind;
}

/**
 * Runs `fn` inside a new active span: a thrown error is recorded on the span (with its code, if it
 * has one) and re-thrown; the span always ends.
 */
export async function withSpan<T>(name: string, options: SpanOptions, fn: (span: Span) => Promise<T>): Promise<T> {
  const attributes = Object.fromEntries(Object.entries(options.attributes ?? {}).filter(([, v]) => v !== undefined)) as Record<
    string,
    string | number | boolean
  >;
  return tracer().startActiveSpan(
    name,
    { attributes, ...(options.kind !== undefined ? { kind: options.kind } : {}) },
    contextFrom(options.parent),
    async (span) => {
      try {
        return await fn(span);
      } catch (err) {
        const e = err as Error & { code?: string };
        span.recordException(e);
        span.setStatus({ code: SpanStatusCode.ERROR, message: e.code ?? e.message });
        if (e.code) span.setAttribute('docorch.error.code', e.code);
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

export { SpanKind, type Span } from '@opentelemetry/api';
