/**
 * The environment reference in docs/DEVELOPMENT.md lists exactly the variables the code reads:
 * the table equals the config schema (rewrite it with `pnpm docs:env`), no module of core or the
 * services reads `process.env` but the config module, and every other read of a named variable
 * (tools, the local stack's helpers, benchmarks) is listed in the page's "Read outside the config
 * module" table.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configReference } from '../src/index.js';

const root = path.resolve(import.meta.dirname, '../../..');
const page = readFileSync(path.join(root, 'docs/DEVELOPMENT.md'), 'utf8');

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name === 'test' || name.startsWith('.')) continue;
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) out.push(...sourceFiles(file));
    else if (/\.(ts|mts|mjs|js)$/.test(name) && !name.endsWith('.d.ts')) out.push(file);
  }
  return out;
}

/** Named variables a file reads from process.env (spreading or passing the whole env is not a read). */
function envReads(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const names = new Set<string>();
  for (const m of code.matchAll(/process\.env(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*\]|\[\s*([a-z][A-Za-z0-9_]*)\s*\])/g)) {
    names.add(m[1] ?? m[2] ?? `<dynamic:${m[3]}>`);
  }
  for (const m of code.matchAll(/const\s*\{([^}]+)\}\s*=\s*process\.env/g)) {
    for (const n of (m[1] as string).split(',')) names.add(n.trim().split(':')[0]?.trim() as string);
  }
  return [...names];
}

/** The page's "Read outside the config module" rows: file patterns -> variable patterns. */
function documentedExceptions(): Array<{ files: RegExp[]; vars: RegExp[] }> {
  const section = page.slice(page.indexOf('### Read outside the config module'));
  const glob = (s: string) => new RegExp(`^${s.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*')}$`);
  return section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) => {
      const [files = '', vars = ''] = l.split('|').slice(1, 3);
      return { files: [...files.matchAll(/`([^`]+)`/g)].map((m) => glob(m[1] as string)), vars: [...vars.matchAll(/`([^`]+)`/g)].map((m) => glob(m[1] as string)) };
    });
}

describe('environment reference', () => {
  it('lists exactly the variables of the config schema, with their defaults', () => {
    const begin = page.indexOf('<!-- env-reference:begin');
    const table = page.slice(page.indexOf('\n', begin) + 1, page.indexOf('<!-- env-reference:end -->')).trim();
    expect(table, 'docs/DEVELOPMENT.md is out of date: run `pnpm docs:env`').toBe(configReference());
  });

  it('finds no process.env read in core or the services but the config module', () => {
    const offenders = [...sourceFiles(path.join(root, 'packages/core/src')), ...readdirSync(path.join(root, 'services')).flatMap((s) => sourceFiles(path.join(root, 'services', s, 'src')))]
      .filter((f) => !f.endsWith(`${path.sep}config.ts`))
      .flatMap((f) => envReads(readFileSync(f, 'utf8')).map((v) => `${path.relative(root, f)}: ${v}`));
    expect(offenders).toEqual([]);
  });

  it('documents every other read of a named variable', () => {
    const exceptions = documentedExceptions();
    expect(exceptions.length).toBeGreaterThan(0);
    const files = ['packages/testkit/src', 'scripts', 'bench'].flatMap((d) => sourceFiles(path.join(root, d)));
    const undocumented = files.flatMap((f) => {
      const rel = path.relative(root, f).split(path.sep).join('/');
      return envReads(readFileSync(f, 'utf8'))
        .filter((v) => !v.startsWith('<dynamic:') || !exceptions.some((e) => e.files.some((p) => p.test(rel))))
        .filter((v) => !exceptions.some((e) => e.files.some((p) => p.test(rel)) && e.vars.some((p) => p.test(v))))
        .map((v) => `${rel}: ${v}`);
    });
    expect(undocumented, 'add them to "Read outside the config module" in docs/DEVELOPMENT.md, or read them through loadConfig()').toEqual([]);
  });
});
