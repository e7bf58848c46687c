#!/usr/bin/env node
// The README's two commands, `npm start` and `npm test`, on a fresh clone with only Node 20+ and
// Java 17: install the pinned pnpm locally if needed, install dependencies, build, then start the
// local stack or run every test suite. Plain Node, no dependencies: it runs before anything is installed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PNPM_VERSION = '12.4.2';
const toolsDir = path.join(root, '.tools');
const localPnpm = path.join(toolsDir, 'node_modules', '.bin', 'pnpm');
const [command = 'start', ...rest] = process.argv.slice(2);

function log(message) {
  process.stderr.write(`[docorch] ${message}\n`);
}

function run(bin, args, options = {}) {
  const res = spawnSync(bin, args, { cwd: root, stdio: 'inherit', ...options });
  if (res.error) throw res.error;
  if (res.status !== 0) {
    log(`${path.basename(bin)} ${args.join(' ')} failed with exit code ${res.status}`);
    process.exit(res.status ?? 1);
  }
}

function versionOf(bin) {
  const res = spawnSync(bin, ['--version'], { cwd: root, encoding: 'utf8' });
  return res.status === 0 ? res.stdout.trim() : undefined;
}

function ensurePnpm() {
  if (versionOf('pnpm') === PNPM_VERSION) return 'pnpm';
  if (existsSync(localPnpm) && versionOf(localPnpm) === PNPM_VERSION) return localPnpm;
  log(`installing pnpm ${PNPM_VERSION} into .tools/`);
  run('npm', ['install', '--prefix', toolsDir, '--no-audit', '--no-fund', '--loglevel=error', `pnpm@${PNPM_VERSION}`]);
  return localPnpm;
}

function checkPrerequisites() {
  const [major] = process.versions.node.split('.').map(Number);
  if (major < 20) {
    log(`Node ${process.versions.node} is too old: docorch needs Node 20 or newer.`);
    process.exit(1);
  }
  const java = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (java.status !== 0) {
    log('Java 17+ is required by DynamoDB Local (the local DynamoDB emulator). Install a JRE (e.g. openjdk-17-jre-headless).');
    process.exit(1);
  }
}

checkPrerequisites();
const pnpm = ensurePnpm();
const env = { ...process.env, npm_config_update_notifier: 'false', PNPM_CONFIG_UPDATE_NOTIFIER: 'false' };
log('installing dependencies');
run(pnpm, ['install', '--frozen-lockfile', '--reporter=append-only'], { env });
log('building');
run(pnpm, ['exec', 'tsc', '-b'], { env });

let child;
switch (command) {
  case 'start':
    child = spawn(process.execPath, ['packages/testkit/dist/stack/main.js', ...rest], {
      cwd: root,
      stdio: 'inherit',
      env,
    });
    break;
  case 'test':
    child = spawn(pnpm, ['exec', 'vitest', 'run', ...rest], { cwd: root, stdio: 'inherit', env });
    break;
  default:
    log(`unknown command ${command}; use start or test`);
    process.exit(2);
}
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
