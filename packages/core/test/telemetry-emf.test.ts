/**
 * EMF lines of the aggregator Lambda: counters as increments since the last flush, histograms as
 * Values/Counts (bucket midpoints) so CloudWatch computes percentiles, gauges as values; each line
 * a valid EMF document (the metric named in _aws.CloudWatchMetrics, its dimensions as members).
 */
import { describe, expect, it } from 'vitest';
import { createMetrics, EmfPublisher } from '../src/index.js';

interface EmfLine {
  _aws: { Timestamp: number; CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][]; Metrics: Array<{ Name: string; Unit: string }> }> };
  [key: string]: unknown;
}

describe('EmfPublisher', () => {
  it('writes deltas of counters, histogram distributions and gauges', async () => {
    const metrics = createMetrics('aggregator');
    const lines: EmfLine[] = [];
    const emf = new EmfPublisher(metrics.registry, { namespace: 'docorch-test', write: (l) => lines.push(JSON.parse(l) as EmfLine), now: () => 1_000 });
    metrics.assemblies.inc({ outcome: 'completed' }, 2);
    metrics.assemblySeconds.observe(0.2);
    metrics.assemblySeconds.observe(0.3);
    metrics.assemblySeconds.observe(3);
    metrics.circuitState.set(2);
    await emf.flush();

    const byName = (name: string) => lines.filter((l) => name in l);
    const [assemblies] = byName('assemblies_total');
    expect(assemblies).toMatchObject({ service: 'aggregator', outcome: 'completed', assemblies_total: 2 });
    expect(assemblies?._aws.CloudWatchMetrics[0]).toEqual({
      Namespace: 'docorch-test',
      Dimensions: [['outcome', 'service']],
      Metrics: [{ Name: 'assemblies_total', Unit: 'Count' }],
    });
    const [histogram] = byName('assembly_seconds');
    // 0.2 and 0.3 fall in (0.1, 0.25] and (0.25, 0.5]; 3 in (2.5, 5].
    expect(histogram?.assembly_seconds).toEqual({ Values: [0.175, 0.375, 3.75], Counts: [1, 1, 1] });
    expect(byName('circuit_state')[0]?.circuit_state).toBe(2);

    // A second flush carries only what changed since the first.
    lines.length = 0;
    metrics.assemblies.inc({ outcome: 'completed' });
    metrics.assemblySeconds.observe(0.2);
    await emf.flush();
    expect(byName('assemblies_total')[0]?.assemblies_total).toBe(1);
    expect(byName('assembly_seconds')[0]?.assembly_seconds).toEqual({ Values: [0.175], Counts: [1] });
    expect(lines.some((l) => Object.keys(l).some((k) => k.startsWith('process_') || k.startsWith('nodejs_')))).toBe(false);
  });
});
