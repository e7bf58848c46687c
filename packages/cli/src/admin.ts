/**
 * `docorch` admin commands: tenants, plans, API keys, usage, dead letters and tenant webhooks, over core's TenantStore,
 * UsageMeter and dead-letter steps (the same code the API authenticates with and `npm start` seeds the dev tenant with).
 *
 * Where it connects: the local stack when `.data/stack.json` exists (written by `npm start`: the
 * emulators' endpoints and the resource names), else AWS with the usual AWS environment (region,
 * credentials) and the table names of the config (TENANTS_TABLE, ...). `--stack FILE` names another
 * stack file; `--aws` ignores it.
 *
 * Exit codes: 0 done, 1 error (the message says which), 3 usage (a wrong command or flag).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CLIENT_HELP } from './client-commands.js';
import {
  createAwsClients,
  createLogger,
  createPipelineContext,
  DeadLetters,
  deadLetterId,
  deadLetterKey,
  DocorchError,
  purgeDeadLetter,
  replayDeadLetter,
  unavailableExtractor,
  type Analyzer,
  type DeadLetter,
  type PipelineContext,
  loadConfig,
  parseDuration,
  PLAN_FIELDS,
  resolvePlan,
  TenantStore,
  UsageMeter,
  WebhookTargetGuard,
  type AwsClients,
  type Config,
  type Plan,
} from '@docorch/core';

/** Where output goes (tests capture it). */
export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

class UsageError extends Error {}

const PLAN_FLAGS = {
  'max-file-bytes': 'maxFileBytes',
  'max-pages': 'maxPages',
  'uploads-per-minute': 'uploadsPerMinute',
  'reads-per-minute': 'readsPerMinute',
  'concurrent-documents': 'concurrentDocuments',
  'pages-per-month': 'pagesPerMonth',
  'tokens-per-month': 'tokensPerMonth',
  weight: 'weight',
} as const satisfies Record<string, (typeof PLAN_FIELDS)[number]>;

const PLAN_HELP = `Plan flags (a number; "default" removes the field, so the config default applies):
  --max-file-bytes N        largest upload in bytes (413 above)
  --max-pages N             most pages in one document (422 above)
  --uploads-per-minute N    uploads and deletes per minute (429 above)
  --reads-per-minute N      reads per minute (429 above)
  --concurrent-documents N  documents in flight at once (429 above)
  --pages-per-month N       pages per calendar month, UTC (429 above)
  --tokens-per-month N      model tokens per calendar month (429 above)
  --weight N                share of the worker fleet and the model quota (default 1)`;

const COMMON_HELP = `Common flags:
  --json        print JSON (one object, or an array for listings)
  --stack FILE  the local stack file (default: .data/stack.json in the checkout, when it exists)
  --aws         use AWS (the usual AWS environment) even when a local stack file exists
  --help        this help`;

const HELP: Record<string, string> = {
  '': `docorch: use the docorch API, and administer a deployment.

${CLIENT_HELP['']}

Administering (AWS credentials, or the local stack's .data/stack.json):
  tenants create ID --name NAME [plan flags]   create a tenant
  tenants update ID [--name NAME] [plan flags] change a tenant's name or plan
  tenants list                                 list tenants
  tenants show ID                              show a tenant and its effective plan
  tenants suspend ID                           stop every key of a tenant from working
  tenants resume ID                            let a suspended tenant's keys work again
  keys create TENANT [--name N] [--expires-in 30d] [--read-only]
                                               create an API key (the secret is printed once)
  keys list TENANT                             list a tenant's keys (never their secrets)
  keys revoke KEYID                            revoke a key
  usage show TENANT [--month YYYY-MM]          show a tenant's usage and quotas
  dead-letters list [--tenant T] [--all]       list held dead letters (--all: every disposition)
  dead-letters show ID                         show a dead letter with its record and error
  dead-letters replay ID                       re-publish its record (attempt reset) and release its work
  dead-letters purge ID                        delete a dead letter nothing waits on
  webhooks set TENANT URL                      send every document's terminal event to URL
  webhooks clear TENANT                        stop the tenant's webhook (uploads' own webhookUrl still work)
  webhooks show TENANT                         show the tenant's webhook URL
  webhooks secret TENANT [--rotate]            print the signing secret (made on first use)

Run "docorch <command> <verb> --help" for one command.

${COMMON_HELP}`,
  'tenants create': `docorch tenants create ID --name NAME [plan flags] [--json]
Creates a tenant with status active. ID: lower-case letters, digits, - and _ (up to 63).

${PLAN_HELP}

${COMMON_HELP}`,
  'tenants update': `docorch tenants update ID [--name NAME] [plan flags] [--json]
Changes a tenant's name and plan fields; fields not given stay as they are.

${PLAN_HELP}

${COMMON_HELP}`,
  'tenants list': `docorch tenants list [--json]
Lists every tenant with its status and plan.

${COMMON_HELP}`,
  'tenants show': `docorch tenants show ID [--json]
Shows a tenant, its plan fields and the effective plan (fields over the config defaults).

${COMMON_HELP}`,
  'tenants suspend': `docorch tenants suspend ID [--json]
Suspends a tenant: its keys answer 401 on every API replica within AUTH_CACHE_TTL_MS (5 s).

${COMMON_HELP}`,
  'tenants resume': `docorch tenants resume ID [--json]
Resumes a suspended tenant.

${COMMON_HELP}`,
  'keys create': `docorch keys create TENANT [--name N] [--expires-in 30d] [--read-only] [--json]
Creates an API key. The key (dk_live_<keyid>_<secret>) is printed once and only its hash is stored.
  --name N          a label for listings (default "default")
  --expires-in D    expiry, e.g. 30d, 12h, 90m (default: never)
  --read-only       the key may only read (GET); writes answer 403
With --json, one JSON object whose "key" field is the secret.

${COMMON_HELP}`,
  'keys list': `docorch keys list TENANT [--json]
Lists a tenant's keys: id, name, scope, created, last used, expiry, revocation. Never a secret.

${COMMON_HELP}`,
  'keys revoke': `docorch keys revoke KEYID [--json]
Revokes a key: it answers 401 on every API replica within AUTH_CACHE_TTL_MS (5 s).

${COMMON_HELP}`,
  'usage show': `docorch usage show TENANT [--month YYYY-MM] [--json]
Shows a tenant's model usage and each quota's used, reserved and limit for a month (default: this month, UTC).

${COMMON_HELP}`,
  'dead-letters list': `docorch dead-letters list [--tenant T] [--all] [--json]
Lists dead letters: records the worker fleet gave up on. A "held" letter holds its work (a chunk, or
a document's split): the document stays open and waits for a replay for RECONCILE_STALE_MS (5 min by
default), then the reconciler finishes that work with the letter's error. Without --all, only held ones.

${COMMON_HELP}`,
  'dead-letters show': `docorch dead-letters show ID [--json]
Shows a dead letter: tenant, document, chunk, error, disposition and the original record.

${COMMON_HELP}`,
  'dead-letters replay': `docorch dead-letters replay ID [--json]
Replays a held dead letter once its cause is fixed: releases the hold, resets the attempt count and
re-publishes the original record; the letter is marked replayed. Exit 1 if it is not held (already
replayed, or its work was finished) or its document is no longer open.

${COMMON_HELP}`,
  'dead-letters purge': `docorch dead-letters purge ID [--json]
Deletes a dead letter that nothing waits on (replayed, failed or informational). Held letters are
refused: replay them, or let the reconciler finish their work. Dead letters are also deleted with
their document.

${COMMON_HELP}`,
  'webhooks set': `docorch webhooks set TENANT URL [--json]
Sets the tenant's webhook: every document's terminal event (document.completed,
document.completed_with_errors, document.failed, document.cancelled) is POSTed to URL, signed with
the tenant's secret (docorch webhooks secret). The URL must be https and resolve to public addresses
(WEBHOOK_ALLOWED_CIDRS allows others, e.g. 127.0.0.1 in the local stack).

${COMMON_HELP}`,
  'webhooks clear': `docorch webhooks clear TENANT [--json]
Removes the tenant's webhook. Deliveries already scheduled still run.

${COMMON_HELP}`,
  'webhooks show': `docorch webhooks show TENANT [--json]
Shows the tenant's webhook URL (never the secret).

${COMMON_HELP}`,
  'webhooks secret': `docorch webhooks secret TENANT [--rotate] [--json]
Prints the tenant's webhook signing secret (whsec_...), made on first use. Receivers verify the
Docorch-Signature header with it (docs/webhooks.md). --rotate replaces it: deliveries sent from
then on are signed with the new secret.

${COMMON_HELP}`,
};

/** A pipeline context for the dead-letter commands: stores and the stream, no PDF or model work. */
function adminContext(config: Config, aws: AwsClients): PipelineContext {
  const logger = createLogger({ service: 'docorch-cli', level: 'warn' });
  const analyzer: Analyzer = {
    name: 'none',
    analyzeChunk: () => Promise.reject(new Error('the admin command line does not analyse')),
    reduceSummaries: () => Promise.reject(new Error('the admin command line does not analyse')),
    close: () => Promise.resolve(),
  };
  return createPipelineContext(config, logger, { aws, analyzer, extractor: unavailableExtractor('the admin command line does not parse PDFs') });
}

function letterRow(l: DeadLetter): Record<string, string> {
  return {
    id: deadLetterId(l),
    dead: l.deadAt,
    tenant: l.tenantId ?? '-',
    document: l.documentId ?? '-',
    chunk: l.chunkIndex === undefined ? '-' : String(l.chunkIndex),
    type: l.type ?? '-',
    code: l.code,
    disposition: l.disposition ?? 'replayed',
  };
}

/** The config and clients of the target: the local stack file, or AWS. */
function connect(flags: { stack?: string | undefined; aws?: boolean | undefined }, root: string): { config: Config; aws: AwsClients; where: string } {
  const file = flags.stack ?? path.join(root, '.data/stack.json');
  if (!flags.aws && existsSync(file)) {
    const stack = JSON.parse(readFileSync(file, 'utf8')) as { env: Record<string, string> };
    // The SDK reads the emulators' credentials from the environment, as the stack's processes do.
    Object.assign(process.env, stack.env);
    const config = loadConfig({ ...process.env, ...stack.env });
    return { config, aws: createAwsClients(config), where: `local stack (${path.relative(process.cwd(), file) || file})` };
  }
  if (flags.stack) throw new UsageError(`no stack file at ${flags.stack}`);
  const config = loadConfig();
  return { config, aws: createAwsClients(config), where: `AWS ${config.AWS_REGION}, table ${config.TENANTS_TABLE}` };
}

function planFrom(values: Record<string, string | boolean | undefined>): { [K in keyof Plan]?: number | null } {
  const plan: { [K in keyof Plan]?: number | null } = {};
  for (const [flag, field] of Object.entries(PLAN_FLAGS)) {
    const raw = values[flag];
    if (raw === undefined) continue;
    if (raw === 'default') {
      plan[field] = null;
      continue;
    }
    const n = Number(raw);
    if (typeof raw !== 'string' || !Number.isFinite(n) || n < 0 || (field !== 'weight' && !Number.isInteger(n))) {
      throw new UsageError(`--${flag} must be ${field === 'weight' ? 'a positive number' : 'a whole number'} (or "default")`);
    }
    plan[field] = n;
  }
  return plan;
}

function table(rows: Array<Record<string, string>>): string {
  if (rows.length === 0) return '(none)\n';
  const cols = Object.keys(rows[0] as Record<string, string>);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(width[i] as number)).join('  ').trimEnd();
  return `${[line(cols), ...rows.map((r) => line(cols.map((c) => r[c] ?? '')))].join('\n')}\n`;
}

const planText = (plan: Plan) =>
  Object.entries(plan)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ') || '(defaults)';

/**
 * Runs one admin command line; returns the exit code.
 * @param root - the checkout whose `.data/stack.json` is the default local target.
 */
export async function runAdmin(argv: string[], io: Io, root: string): Promise<number> {
  const [command = '', verb = ''] = argv.filter((a) => !a.startsWith('-')).slice(0, 2);
  const helpKey = HELP[`${command} ${verb}`] ? `${command} ${verb}` : '';
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        stack: { type: 'string' },
        aws: { type: 'boolean' },
        name: { type: 'string' },
        'expires-in': { type: 'string' },
        'read-only': { type: 'boolean' },
        tenant: { type: 'string' },
        all: { type: 'boolean' },
        month: { type: 'string' },
        rotate: { type: 'boolean' },
        ...Object.fromEntries(Object.keys(PLAN_FLAGS).map((f) => [f, { type: 'string' as const }])),
      },
    });
  } catch (err) {
    io.err(`docorch: ${(err as Error).message}\n\n${HELP[helpKey]}\n`);
    return 3;
  }
  const { values, positionals } = parsed;
  if (values.help || !command) {
    io.out(`${HELP[helpKey]}\n`);
    return values.help ? 0 : 3;
  }
  if (!HELP[`${command} ${verb}`]) {
    io.err(`docorch: unknown command "${[command, verb].filter(Boolean).join(' ')}"\n\n${HELP['']}\n`);
    return 3;
  }
  const arg = positionals[2];
  const json = values.json === true;
  const print = (data: unknown, text: string) => io.out(json ? `${JSON.stringify(data, null, 2)}\n` : text);
  let target: ReturnType<typeof connect> | undefined;
  try {
    if (!arg && !((command === 'tenants' || command === 'dead-letters') && verb === 'list')) throw new UsageError(`missing argument\n\n${HELP[`${command} ${verb}`]}`);
    target = connect({ stack: values.stack, aws: values.aws }, root);
    const { config, aws } = target;
    const tenants = new TenantStore(aws.doc, config.TENANTS_TABLE);
    const id = arg as string;
    switch (`${command} ${verb}`) {
      case 'tenants create': {
        if (!values.name) throw new UsageError('--name is required');
        const plan = planFrom(values);
        const tenant = await tenants.createTenant({
          tenantId: id,
          name: values.name,
          plan: Object.fromEntries(Object.entries(plan).filter(([, v]) => v !== null)) as Plan,
        });
        print(tenant, `created tenant ${tenant.tenantId} (${tenant.name}), plan: ${planText(tenant.plan)}\n`);
        break;
      }
      case 'tenants update': {
        const tenant = await tenants.updateTenant(id, { ...(values.name ? { name: values.name } : {}), plan: planFrom(values) });
        print(tenant, `updated tenant ${tenant.tenantId}, plan: ${planText(tenant.plan)}\n`);
        break;
      }
      case 'tenants list': {
        const all = await tenants.listTenants();
        print(all, table(all.map((t) => ({ id: t.tenantId, name: t.name, status: t.status, plan: planText(t.plan) }))));
        break;
      }
      case 'tenants show': {
        const tenant = await tenants.getTenant(id);
        if (!tenant) throw new DocorchError('NOT_FOUND', `Tenant ${id} not found`);
        const effective = resolvePlan(tenant.plan, config);
        print(
          { ...tenant, effectivePlan: effective },
          `${tenant.tenantId}  ${tenant.name}  ${tenant.status}  created ${tenant.createdAt}\n${table(
            PLAN_FIELDS.map((f) => ({ plan: f, value: String(effective[f]), source: tenant.plan[f] === undefined ? 'default' : 'tenant' })),
          )}`,
        );
        break;
      }
      case 'tenants suspend':
      case 'tenants resume': {
        const tenant = await tenants.updateTenant(id, { status: verb === 'suspend' ? 'suspended' : 'active' });
        print(tenant, `tenant ${tenant.tenantId} is ${tenant.status}${verb === 'suspend' ? ` (its keys stop working within ${config.AUTH_CACHE_TTL_MS} ms)` : ''}\n`);
        break;
      }
      case 'keys create': {
        const expiresIn = values['expires-in'];
        const { info, key } = await tenants.createKey(id, {
          ...(values.name ? { name: values.name } : {}),
          ...(expiresIn ? { expiresInMs: parseDuration(expiresIn) } : {}),
          readOnly: values['read-only'] === true,
        });
        print(
          { ...info, key },
          `${key}\n\nkey ${info.keyId} (${info.name}) for tenant ${info.tenantId}${info.readOnly ? ', read-only' : ''}${info.expiresAt ? `, expires ${info.expiresAt}` : ''}.\nThis is the only time the key is shown: only its hash is stored.\n`,
        );
        break;
      }
      case 'keys list': {
        const keys = await tenants.listKeys(id);
        print(
          keys,
          table(
            keys.map((k) => ({
              key: k.keyId,
              name: k.name,
              scope: k.readOnly ? 'read-only' : 'read-write',
              created: k.createdAt,
              'last used': k.lastUsedAt ?? '-',
              expires: k.expiresAt ?? '-',
              revoked: k.revokedAt ?? '-',
            })),
          ),
        );
        break;
      }
      case 'keys revoke': {
        const info = await tenants.revokeKey(id);
        print(info, `revoked key ${info.keyId} of tenant ${info.tenantId} (it answers 401 within ${config.AUTH_CACHE_TTL_MS} ms)\n`);
        break;
      }
      case 'usage show': {
        const tenant = await tenants.getTenant(id);
        if (!tenant) throw new DocorchError('NOT_FOUND', `Tenant ${id} not found`);
        if (values.month !== undefined && !/^\d{4}-(0[1-9]|1[0-2])$/.test(values.month)) throw new UsageError('--month must look like 2026-11');
        const report = await new UsageMeter(aws.doc, config.TENANTS_TABLE).report(id, resolvePlan(tenant.plan, config), values.month);
        const q = report.quotas;
        print(
          report,
          `${report.tenantId}, ${report.month}: ${report.modelCalls} model calls, ${report.inputTokens} input and ${report.outputTokens} output tokens, ${report.chunks} chunks\n${table([
            { quota: 'pagesPerMonth', used: String(q.pagesPerMonth.used), reserved: String(q.pagesPerMonth.reserved), limit: String(q.pagesPerMonth.limit) },
            { quota: 'tokensPerMonth', used: String(q.tokensPerMonth.used), reserved: '-', limit: String(q.tokensPerMonth.limit) },
            { quota: 'concurrentDocuments', used: String(q.concurrentDocuments.used), reserved: '-', limit: String(q.concurrentDocuments.limit) },
          ])}`,
        );
        break;
      }
      case 'dead-letters list': {
        const letters = (await new DeadLetters(aws.doc, config.DEAD_LETTERS_TABLE).listAll(values.tenant ? { tenantId: values.tenant } : {})).filter(
          (l) => values.all === true || l.disposition === 'held',
        );
        print(letters.map((l) => ({ id: deadLetterId(l), ...l })), table(letters.map(letterRow)));
        break;
      }
      case 'dead-letters show': {
        const letter = await new DeadLetters(aws.doc, config.DEAD_LETTERS_TABLE).get(deadLetterKey(id));
        if (!letter) throw new DocorchError('NOT_FOUND', `Dead letter ${id} not found`);
        print({ id, ...letter }, `${Object.entries(letterRow(letter)).map(([k, v]) => `${k}: ${v}`).join('\n')}\nmessage: ${letter.message}\n${letter.replayedAt ? `replayed: ${letter.replayedAt}\n` : ''}record:\n${JSON.stringify(letter.record, null, 2)}\n`);
        break;
      }
      case 'dead-letters replay': {
        const outcome = await replayDeadLetter(adminContext(config, aws), id);
        print(
          { id, ...outcome },
          `replayed ${outcome.event.type} of document ${outcome.event.documentId ?? '-'}${outcome.event.chunkIndex === undefined ? '' : `, chunk ${outcome.event.chunkIndex}`} (attempt reset to 1)\n`,
        );
        break;
      }
      case 'dead-letters purge': {
        await purgeDeadLetter(adminContext(config, aws), id);
        print({ id, purged: true }, `purged dead letter ${id}\n`);
        break;
      }
      case 'webhooks set': {
        const url = positionals[3];
        if (!url) throw new UsageError(`missing URL\n\n${HELP['webhooks set']}`);
        await new WebhookTargetGuard({ allowedCidrs: config.WEBHOOK_ALLOWED_CIDRS }).vet(url);
        const tenant = await tenants.setWebhookUrl(id, url);
        print({ tenantId: id, webhookUrl: tenant.webhookUrl }, `tenant ${id} webhook: ${tenant.webhookUrl}\n`);
        break;
      }
      case 'webhooks clear': {
        await tenants.setWebhookUrl(id, null);
        print({ tenantId: id, webhookUrl: null }, `tenant ${id} has no webhook now\n`);
        break;
      }
      case 'webhooks show': {
        const tenant = await tenants.getTenant(id);
        if (!tenant) throw new DocorchError('NOT_FOUND', `Tenant ${id} not found`);
        print({ tenantId: id, webhookUrl: tenant.webhookUrl ?? null }, `tenant ${id} webhook: ${tenant.webhookUrl ?? '(none)'}\n`);
        break;
      }
      case 'webhooks secret': {
        const secret = await tenants.webhookSecret(id, { rotate: values.rotate === true });
        print({ tenantId: id, secret }, `${secret}\n`);
        break;
      }
    }
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`docorch: ${err.message}\n`);
      return 3;
    }
    const message = err instanceof DocorchError ? `${err.code}: ${err.message}` : (err as Error).message;
    io.err(`docorch: ${message}${target ? ` [${target.where}]` : ''}\n`);
    return 1;
  } finally {
    target?.aws.destroy();
  }
}
