/**
 * The static infrastructure checks CI runs, offline: `terraform fmt -check -recursive`,
 * `terraform init` from the machine's provider mirror, `terraform validate`, `terraform test`
 * (plan.tftest.hcl: HTTPS required, the handler checked against the bundle's manifest, ...;
 * iam.tftest.hcl: least privilege), and `docker-compose config -q`. Then the negative case that
 * only a copy can show: an IAM wildcard on a data action added to iam.tf makes the IAM test fail.
 *
 * Skipped with a message naming what is missing where terraform or the provider mirror (or
 * docker-compose) is not on the machine.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');
const tfDir = path.join(root, 'infra/terraform');

function which(bin: string): string | undefined {
  const res = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  return res.status === 0 ? res.stdout.trim() : undefined;
}

/** The folder holding registry.terraform.io/hashicorp/aws (the offline provider mirror). */
function providerMirror(): string | undefined {
  for (const base of [process.env.TF_PLUGIN_DIR, '/opt/tf-plugins', '/usr/share/terraform/plugins', path.join(process.env.HOME ?? '/root', '.terraform.d/plugins')]) {
    if (base && existsSync(path.join(base, 'registry.terraform.io/hashicorp/aws'))) return base;
  }
  return undefined;
}

const terraform = which('terraform');
const mirror = providerMirror();
const tfMissing = !terraform ? 'terraform is not installed' : !mirror ? 'no hashicorp/aws provider mirror (registry.terraform.io folder) on this machine' : undefined;
if (tfMissing) console.warn(`[infra] SKIPPED the Terraform checks: ${tfMissing}`);
const compose = which('docker-compose');
if (!compose) console.warn('[infra] SKIPPED `docker-compose config -q`: docker-compose is not installed');

function tf(dir: string, args: string[]): SpawnSyncReturns<string> {
  return spawnSync(terraform as string, args, {
    cwd: dir,
    encoding: 'utf8',
    timeout: 300_000,
    env: { ...process.env, TF_CLI_CONFIG_FILE: '/dev/null', TF_IN_AUTOMATION: '1', CHECKPOINT_DISABLE: '1' },
  });
}
const out = (r: SpawnSyncReturns<string>) => `${r.stdout}\n${r.stderr}`;

function init(dir: string): void {
  const r = tf(dir, ['init', '-backend=false', `-plugin-dir=${mirror}`, '-input=false', '-no-color']);
  expect(r.status, out(r)).toBe(0);
}

describe.skipIf(tfMissing !== undefined)('terraform, offline', () => {
  it('is formatted, validates, and its plan and IAM tests pass', { timeout: 600_000 }, () => {
    const fmt = tf(tfDir, ['fmt', '-check', '-recursive', '-no-color']);
    expect(fmt.status, `terraform fmt would change: ${out(fmt)}`).toBe(0);
    init(tfDir);
    const validate = tf(tfDir, ['validate', '-no-color']);
    expect(validate.status, out(validate)).toBe(0);
    const test = tf(tfDir, ['test', '-no-color']);
    expect(test.status, out(test)).toBe(0);
    // Each named check ran (and the negative ones failed for their reason: expect_failures).
    for (const run of ['http_defaults', 'rejects_missing_certificate', 'rejects_unexported_handler', 'least_privilege']) {
      expect(test.stdout).toMatch(new RegExp(`run "${run}"\\.\\.\\. pass`));
    }
  });

  it('fails the IAM test when a data action gets a wildcard resource', { timeout: 600_000 }, async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'docorch-tf-'));
    try {
      await cp(tfDir, dir, { recursive: true, filter: (src) => !src.includes(`${path.sep}.terraform`) && !src.includes(`${path.sep}build`) });
      const iam = path.join(dir, 'iam.tf');
      const original = await readFile(iam, 'utf8');
      // The worker's chunk-result writes, widened to every bucket and object in the account.
      const widened = original.replace(
        /(sid\s*=\s*"ResultsObjects"\s*\n\s*actions\s*=\s*\["s3:GetObject", "s3:PutObject"\]\s*\n\s*resources\s*=\s*)\[[^\]]*\]/,
        '$1["*"]',
      );
      expect(widened).not.toBe(original);
      await writeFile(iam, widened);
      init(dir);
      const test = tf(dir, ['test', '-no-color', '-filter=tests/iam.tftest.hcl']);
      expect(test.status, out(test)).not.toBe(0);
      expect(out(test)).toContain('A service role grants a wildcard action or a "*" resource.');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!compose)('docker-compose', () => {
  it('parses docker-compose.yml (config -q)', () => {
    const r = spawnSync(compose as string, ['-f', path.join(root, 'docker-compose.yml'), 'config', '-q'], { encoding: 'utf8', cwd: root });
    expect(r.status, out(r)).toBe(0);
  });

  it('pins the emulators in an image built from this repository (nothing fetched at run time)', async () => {
    const text = await readFile(path.join(root, 'docker-compose.yml'), 'utf8');
    expect(text).not.toMatch(/npx|npm (install|exec)/);
    expect(readdirSync(root)).toEqual(expect.arrayContaining(['Dockerfile.api', 'Dockerfile.worker', 'Dockerfile.emulators', '.dockerignore']));
  });
});
