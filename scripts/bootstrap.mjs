#!/usr/bin/env node
// The README's two commands, `npm start` and `npm test`, on a fresh clone with any Node (the
// machine's may be past its end of life) and Java 17: run on the pinned Node LTS (`.node-version`),
// installing it into .tools/ from the npm registry's `node-<platform>-<arch>` package when the
// system Node is another major; install the pinned pnpm the same way, install dependencies, build,
// then start the local stack or run every test suite. Plain Node, no dependencies: it runs before
// anything is installed, on whatever Node the machine has.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NODE_VERSION = readFileSync(path.join(root, '.node-version'), 'utf8').trim();
const NODE_MAJOR = Number(NODE_VERSION.split('.')[0]);
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

function versionOf(bin, env = process.env) {
  const res = spawnSync(bin, ['--version'], { cwd: root, encoding: 'utf8', env });
  return res.status === 0 ? res.stdout.trim() : undefined;
}

/**
 * The pinned Node's binary: this process's when it is already that major (a machine or image
 * that ships it), else the copy in .tools/, installed from the registry package on first use.
 * The system's Node is never touched.
 */
function ensureNode() {
  if (Number(process.versions.node.split('.')[0]) === NODE_MAJOR) return process.execPath;
  const pkg = `node-${process.platform}-${process.arch}`;
  const prefix = path.join(toolsDir, `node-${NODE_VERSION}`);
  const bin = path.join(prefix, 'node_modules', pkg, 'bin', 'node');
  if (existsSync(bin) && versionOf(bin) === `v${NODE_VERSION}`) return bin;
  log(`Node ${process.versions.node} is not Node ${NODE_MAJOR}: installing Node ${NODE_VERSION} into .tools/ (the system Node stays as it is)`);
  run('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', '--no-save', '--loglevel=error', `${pkg}@${NODE_VERSION}`]);
  if (versionOf(bin) !== `v${NODE_VERSION}`) {
    log(`the ${pkg}@${NODE_VERSION} package did not give a working Node at ${bin}`);
    process.exit(1);
  }
  return bin;
}

function ensurePnpm(env) {
  if (versionOf('pnpm', env) === PNPM_VERSION) return 'pnpm';
  if (existsSync(localPnpm) && versionOf(localPnpm, env) === PNPM_VERSION) return localPnpm;
  log(`installing pnpm ${PNPM_VERSION} into .tools/`);
  run('npm', ['install', '--prefix', toolsDir, '--no-audit', '--no-fund', '--loglevel=error', `pnpm@${PNPM_VERSION}`], { env });
  return localPnpm;
}

function checkJava() {
  const java = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (java.status !== 0) {
    log('Java 17+ is required by DynamoDB Local (the local DynamoDB emulator). Install a JRE (e.g. openjdk-17-jre-headless).');
    process.exit(1);
  }
}

// Re-run this script on the pinned Node, with that Node first on PATH so that pnpm, vitest and
// every process they start (emulators, services) run on it too.
const node = ensureNode();
if (node !== process.execPath) {
  const env = { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? ''}` };
  const child = spawn(node, [fileURLToPath(import.meta.url), command, ...rest], { cwd: root, stdio: 'inherit', env });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  main();
}

function main() {
  checkJava();
  const env = {
    ...process.env,
    // The pinned Node first, then the pinned pnpm (for `exec pnpm ...`).
    PATH: [path.dirname(process.execPath), path.join(toolsDir, 'node_modules', '.bin'), process.env.PATH ?? ''].join(path.delimiter),
    npm_config_update_notifier: 'false',
    PNPM_CONFIG_UPDATE_NOTIFIER: 'false',
  };
  const cli = path.join(root, 'packages/cli/dist/main.js');
  if (command === 'docorch' && existsSync(cli)) {
    // The admin command line after a build (`npm start` or `npm test` made one): no install, no log.
    const child = spawn(process.execPath, [cli, ...rest], { cwd: process.env.INIT_CWD ?? root, stdio: 'inherit', env });
    child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
    return;
  }
  log(`Node ${process.version} (${process.execPath})`);
  const pnpm = ensurePnpm(env);
  log('installing dependencies');
  run(pnpm, ['install', '--frozen-lockfile', '--reporter=append-only'], { env });
  log('building');
  run(pnpm, ['run', 'build'], { env });

  let child;
  switch (command) {
    case 'start':
      child = spawn(process.execPath, ['packages/testkit/dist/stack/main.js', ...rest], { cwd: root, stdio: 'inherit', env });
      break;
    case 'test':
      // Just built: the service processes the tests start run compiled, as `npm start` runs them
      // (packages/testkit/src/services.ts servicesCompiledByDefault).
      child = spawn(pnpm, ['exec', 'vitest', 'run', ...rest], { cwd: root, stdio: 'inherit', env: { DOCORCH_TEST_SERVICES: 'compiled', ...env } });
      break;
    case 'docorch':
      child = spawn(process.execPath, [cli, ...rest], { cwd: process.env.INIT_CWD ?? root, stdio: 'inherit', env });
      break;
    case 'exec':
      // `node scripts/bootstrap.mjs exec <cmd> ...`: a command on the pinned Node, after install and build (CI uses it).
      child = spawn(rest[0] ?? 'true', rest.slice(1), { cwd: root, stdio: 'inherit', env });
      break;
    default:
      log(`unknown command ${command}; use start, test, docorch or exec`);
      process.exit(2);
  }
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
