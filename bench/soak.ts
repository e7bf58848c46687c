/**
 * The chaos soak, as long as you like: `pnpm soak -- --minutes N` (default 30), one round per
 * minute. Starts its own emulators; see packages/testkit/src/soak.ts for what it does and prints.
 * Exits 1 if any round had a stuck or lost document, a double count, or more repeated analyses
 * than analyses in flight at the kills and stops.
 * Knobs: SOAK_AWS_ERROR_RATE (0.05), SOAK_SEED (1).
 */
import { parseArgs } from 'node:util';
import { runSoak, startEmulators } from '@docorch/testkit';
import { knob } from './lib.js';

const { values } = parseArgs({ args: process.argv.slice(2).filter((a) => a !== '--'), options: { minutes: { type: 'string', default: '30' } } });
const minutes = Math.max(1, Math.round(Number(values.minutes)));
const emulators = await startEmulators();
Object.assign(process.env, emulators.env);
let bad = 0;
try {
  console.log(`chaos soak: ${minutes} round(s) of 60 s, AWS error rate ${knob('SOAK_AWS_ERROR_RATE', 0.05)}`);
  const rounds = await runSoak({ rounds: minutes, roundMs: 60_000, awsErrorRate: knob('SOAK_AWS_ERROR_RATE', 0.05), seed: knob('SOAK_SEED', 1) });
  for (const r of rounds) if (r.stuck > 0 || r.lost > 0 || r.doubleCounts > 0 || r.repeatedAnalyses > r.inFlightAtChaos) bad++;
  const total = (f: (r: (typeof rounds)[number]) => number) => rounds.reduce((n, r) => n + f(r), 0);
  console.log(
    `soak total: submitted ${total((r) => r.submitted)}, completed ${total((r) => r.completed)}, completed_with_errors ${total((r) => r.completedWithErrors)}, ` +
      `failed ${total((r) => Object.values(r.failed).reduce((a, b) => a + b, 0))}, stuck ${total((r) => r.stuck)}, lost ${total((r) => r.lost)}, ` +
      `double counts ${total((r) => r.doubleCounts)}, max submit->terminal ${(Math.max(...rounds.map((r) => r.maxSubmitToTerminalMs)) / 1000).toFixed(1)} s; rounds failing the target: ${bad}`,
  );
} finally {
  await emulators.stop();
}
process.exit(bad > 0 ? 1 : 0);
