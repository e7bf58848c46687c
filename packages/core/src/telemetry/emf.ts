/**
 * CloudWatch Embedded Metric Format (EMF) for processes nothing can scrape: the aggregator Lambda.
 * Lambda sends stdout to CloudWatch Logs, which turns each EMF line into metrics. The ECS services
 * are scraped at /metrics by a collector sidecar instead (infra/terraform/ecs.tf).
 *
 * Each flush writes one line per metric series with what changed since the previous flush:
 * counter increments as a Count, histogram observations as `Values`/`Counts` (bucket midpoints, so
 * CloudWatch computes p50/p95 from them), gauges as their value.
 * Format: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */
import type { Registry } from 'prom-client';

/** Options of {@link EmfPublisher}. */
export interface EmfOptions {
  /** CloudWatch namespace. @defaultValue 'docorch' */
  namespace?: string;
  /** Where lines go. @defaultValue process.stdout */
  write?: (line: string) => void;
  /** Clock. @defaultValue Date.now */
  now?: () => number;
}

interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** Turns a prom-client registry into EMF lines, one flush at a time. */
export class EmfPublisher {
  private readonly last = new Map<string, number>();
  private readonly namespace: string;
  private readonly write: (line: string) => void;
  private readonly now: () => number;

  constructor(
    private readonly registry: Registry,
    options: EmfOptions = {},
  ) {
    this.namespace = options.namespace ?? 'docorch';
    this.write = options.write ?? ((line) => process.stdout.write(`${line}\n`));
    this.now = options.now ?? Date.now;
  }

  /** Writes what changed since the last flush; returns the number of lines written. */
  async flush(): Promise<number> {
    let lines = 0;
    for (const metric of await this.registry.getMetricsAsJSON()) {
      if (!metric.name.startsWith('docorch_')) continue; // process defaults stay in Prometheus
      const name = metric.name.replace(/^docorch_/, '');
      const samples = (metric as unknown as { values: Sample[] }).values;
      // prom-client types `type` as an enum, but the JSON carries its name.
      const type = String(metric.type);
      if (type === 'counter') {
        for (const s of samples) {
          const delta = this.delta(`${metric.name}${key(s.labels)}`, s.value);
          if (delta > 0) lines += this.emit(name, 'Count', s.labels, { value: delta });
        }
      } else if (type === 'gauge') {
        for (const s of samples) lines += this.emit(name, 'None', s.labels, { value: s.value });
      } else if (type === 'histogram') {
        lines += this.histogram(name, metric.name, samples);
      }
    }
    return lines;
  }

  private delta(id: string, value: number): number {
    const before = this.last.get(id) ?? 0;
    this.last.set(id, value);
    return value - before;
  }

  private histogram(name: string, fullName: string, samples: Sample[]): number {
    // Group the cumulative bucket samples by series (labels without `le`).
    const series = new Map<string, { labels: Record<string, string | number>; buckets: Array<[number, number]> }>();
    for (const s of samples) {
      if (s.metricName !== `${fullName}_bucket`) continue;
      const { le, ...labels } = s.labels;
      const id = key(labels);
      const entry = series.get(id) ?? { labels, buckets: [] };
      entry.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
      series.set(id, entry);
    }
    let lines = 0;
    for (const [id, { labels, buckets }] of series) {
      buckets.sort((a, b) => a[0] - b[0]);
      const values: number[] = [];
      const counts: number[] = [];
      let previousBound = 0;
      let previousCumulative = 0;
      for (const [bound, cumulative] of buckets) {
        // Observations in this bucket since the last flush (the samples are cumulative over buckets and time).
        const inBucket = this.delta(`${fullName}${id}le=${bound}`, cumulative - previousCumulative);
        // The bucket's midpoint stands for its observations (the open last bucket: its lower bound).
        if (inBucket > 0) {
          values.push(Number.isFinite(bound) ? (previousBound + bound) / 2 : previousBound);
          counts.push(inBucket);
        }
        previousCumulative = cumulative;
        if (Number.isFinite(bound)) previousBound = bound;
      }
      if (values.length > 0) lines += this.emit(name, 'Seconds', labels, { values, counts });
    }
    return lines;
  }

  private emit(
    name: string,
    unit: 'Count' | 'Seconds' | 'None',
    labels: Record<string, string | number>,
    data: { value: number } | { values: number[]; counts: number[] },
  ): number {
    const dimensions = Object.keys(labels).sort();
    const line = {
      _aws: {
        Timestamp: this.now(),
        CloudWatchMetrics: [{ Namespace: this.namespace, Dimensions: [dimensions], Metrics: [{ Name: name, Unit: unit }] }],
      },
      ...Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, String(v)])),
      [name]: 'value' in data ? data.value : { Values: data.values, Counts: data.counts },
    };
    this.write(JSON.stringify(line));
    return 1;
  }
}

function key(labels: Record<string, string | number>): string {
  return Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
