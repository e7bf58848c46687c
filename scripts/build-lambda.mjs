#!/usr/bin/env node
// `pnpm build:lambda`: bundles the aggregator Lambda with esbuild into the zip Terraform deploys
// (infra/terraform/build/aggregator.zip) and writes its manifest next to it (aggregator.zip.json):
// the handlers the bundle really exports, read by importing it on the Lambda runtime's Node major
// (installed into .tools/ like the project's Node), and that runtime. Terraform's plan refuses a
// handler the manifest does not list (lambda.tf).
//
// Why a zip on nodejs22.x: the project runs on Node 24, but the hashicorp/aws provider available
// here accepts Lambda runtimes up to nodejs22.x. A container-image Lambda would need the Lambda
// runtime interface client compiled into an image and a registry to push it to. So the bundle
// targets Node 22 and its tests run on Node 22 (test/aggregator-lambda.test.ts).
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import yazl from 'yazl';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The Lambda runtime and the Node release the bundle is checked on. */
export const LAMBDA_RUNTIME = 'nodejs22.x';
export const LAMBDA_NODE_VERSION = '22.23.5';
const outDir = path.join(root, 'services/aggregator/dist-lambda');
const zipPath = path.join(root, 'infra/terraform/build/aggregator.zip');

/** Node of the Lambda runtime's major, installed into .tools/ from the registry package on first use. */
export function lambdaNode() {
  const pkg = `node-${process.platform}-${process.arch}`;
  const prefix = path.join(root, '.tools', `node-${LAMBDA_NODE_VERSION}`);
  const bin = path.join(prefix, 'node_modules', pkg, 'bin', 'node');
  if (!existsSync(bin)) {
    const res = spawnSync('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', '--no-save', '--loglevel=error', `${pkg}@${LAMBDA_NODE_VERSION}`], { stdio: 'inherit' });
    if (res.status !== 0) throw new Error(`could not install ${pkg}@${LAMBDA_NODE_VERSION}`);
  }
  return bin;
}

/** Bundles, zips and writes the manifest; returns their paths. */
export async function buildLambda() {
  await rm(outDir, { recursive: true, force: true });
  await build({
    absWorkingDir: root,
    entryPoints: {
      lambda: 'services/aggregator/src/lambda.ts',
      // The local analyzer's worker thread, found next to the bundle (threads/thread-script.ts).
      'analyze-thread': 'packages/core/src/analysis/local/analyze-thread.ts',
    },
    outdir: outDir,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    conditions: ['docorch-source'],
    // PDF parsing never runs in the aggregator; its modules are only reached from PDF worker processes.
    // piscina starts its threads from its own worker.js: it is shipped as a package (below).
    external: ['@hyzyla/pdfium', 'pngjs', 'pdfjs-dist', 'piscina'],
    // CommonJS dependencies inside an ESM bundle call require().
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  await writeFile(path.join(outDir, 'package.json'), `${JSON.stringify({ type: 'module' })}\n`);
  // piscina (the local analyzer's thread pool) as a package: no dependencies but an optional native one.
  const piscinaMain = createRequire(path.join(root, 'packages/core/package.json')).resolve('piscina');
  const piscina = piscinaMain.slice(0, piscinaMain.lastIndexOf(`${path.sep}node_modules${path.sep}piscina${path.sep}`)) + `${path.sep}node_modules${path.sep}piscina`;
  await cp(piscina, path.join(outDir, 'node_modules/piscina'), { recursive: true, dereference: true, filter: (src) => !src.endsWith('.map') && !src.endsWith('.ts') });

  // Which handlers does it export? Import it on the runtime's Node and list its functions.
  const probe = spawnSync(
    lambdaNode(),
    ['--input-type=module', '-e', `const m = await import(${JSON.stringify(path.join(outDir, 'lambda.js'))}); console.log(JSON.stringify(Object.keys(m).filter((k) => typeof m[k] === 'function')))`],
    { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } },
  );
  if (probe.status !== 0) throw new Error(`the bundle does not load on Node ${LAMBDA_NODE_VERSION}:\n${probe.stderr}`);
  const handlers = JSON.parse(probe.stdout.trim().split('\n').pop()).map((name) => `lambda.${name}`);

  // A deterministic zip (fixed times, sorted names): the same code gives the same source_code_hash.
  await mkdir(path.dirname(zipPath), { recursive: true });
  const zip = new yazl.ZipFile();
  for (const name of (await readdir(outDir, { recursive: true })).sort()) {
    const file = path.join(outDir, name);
    if ((await stat(file)).isDirectory()) continue;
    zip.addBuffer(await readFile(file), name.split(path.sep).join('/'), { mtime: new Date(Date.UTC(2020, 0, 1)), mode: 0o644 });
  }
  zip.end();
  await new Promise((resolve, reject) => zip.outputStream.pipe(createWriteStream(zipPath)).on('close', resolve).on('error', reject));
  const manifest = { runtime: LAMBDA_RUNTIME, node: LAMBDA_NODE_VERSION, handlers };
  await writeFile(`${zipPath}.json`, `${JSON.stringify(manifest, null, 2)}\n`);
  return { outDir, zipPath, manifest };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { zipPath: zip, manifest } = await buildLambda();
  process.stdout.write(`${path.relative(root, zip)}: ${manifest.handlers.join(', ')} on ${manifest.runtime}\n`);
}
