/**
 * The chaos soak, bounded for CI (issue 10): two rounds of 45 s of a mixed workload from three
 * tenants while random processes are killed -9 or stopped and 5% of AWS request attempts are
 * throttled (packages/testkit/src/soak.ts). Every round: zero stuck, zero lost, zero double
 * counts, and no more repeated analyses than were in flight at the kills and stops.
 * The long run is `pnpm soak -- --minutes 30`.
 */
import { describe, expect, it } from 'vitest';
import { runSoak } from '@docorch/testkit';

describe('chaos soak (bounded)', () => {
  it('loses nothing, leaves nothing stuck and counts every chunk once while processes die and AWS throttles', { timeout: 600_000 }, async () => {
    const rounds = await runSoak({ rounds: 2, roundMs: 45_000, awsErrorRate: 0.05, seed: 7 });
    for (const r of rounds) {
      expect(r.submitted).toBeGreaterThan(10);
      expect(r.stuck, `round ${r.round}`).toBe(0);
      expect(r.lost, `round ${r.round}`).toBe(0);
      expect(r.doubleCounts, `round ${r.round}`).toBe(0);
      expect(r.repeatedAnalyses, `round ${r.round}`).toBeLessThanOrEqual(r.inFlightAtChaos);
      expect(r.completed + r.completedWithErrors).toBeGreaterThan(0);
    }
  });
});
