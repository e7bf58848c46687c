/**
 * The web console (/console) in headless Chromium (Debian's chromium, driven by playwright-core):
 * enter the key, drop a PDF on the page, watch the chunk grid reach all green (live, from the
 * event stream), read the summary and entities, download the JSON; the same at phone width.
 * Screenshots go to a folder the test prints. axe-core reports no serious or critical violation,
 * and the page runs under the API's Content-Security-Policy with no violation.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { AxeBuilder } from '@axe-core/playwright';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatePdf, repoRoot, startFakeGemini, startPipeline, type FakeGemini, type Pipeline } from '@docorch/testkit';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const shots = path.join(repoRoot, '.data', 'test-artifacts', 'console');

describe.skipIf(!CHROMIUM)('the web console in Chromium', () => {
  let pipeline: Pipeline;
  let fake: FakeGemini;
  let browser: Browser;
  const cspViolations: string[] = [];

  beforeAll(async () => {
    // The console is a static build; make it when this checkout has none (npm test builds it).
    if (!existsSync(path.join(repoRoot, 'packages/console/dist/index.html'))) {
      const built = spawnSync(process.execPath, [path.join(repoRoot, 'node_modules/vite/bin/vite.js'), 'build'], { cwd: path.join(repoRoot, 'packages/console'), encoding: 'utf8' });
      if (built.status !== 0) throw new Error(`console build failed: ${built.stderr}`);
    }
    await mkdir(shots, { recursive: true });
    fake = await startFakeGemini({ latencyMs: 250 });
    pipeline = await startPipeline({ workers: 2, shards: 2, prefix: 'console', env: { ANALYZER: 'gemini', GEMINI_API_KEY: 'test', GEMINI_BASE_URL: fake.url } });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    console.log(`[console] screenshots in ${shots}`);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await pipeline?.stop();
    await fake?.close();
  });

  async function openPage(viewport: { width: number; height: number }): Promise<Page> {
    const context = await browser.newContext({ viewport, acceptDownloads: true });
    const page = await context.newPage();
    page.on('console', (m) => {
      if (/Content[- ]Security[- ]Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    return page;
  }

  async function noSeriousViolations(page: Page, label: string): Promise<void> {
    const report = await new AxeBuilder({ page: page as never }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
    const serious = report.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    console.log(`[console] axe (${label}): ${report.violations.length} violations, ${serious.length} serious or critical; ${report.passes.length} rules passed`);
    expect(serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`)).toEqual([]);
  }

  it('takes the key, a dropped PDF, shows the grid going green, the result, and downloads the JSON', async () => {
    const page = await openPage({ width: 1280, height: 900 });
    const res = await page.goto(`${pipeline.api.baseUrl}/console/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toMatch(/script-src 'self'/);
    await noSeriousViolations(page, 'key form');
    await page.screenshot({ path: path.join(shots, '1-key.png') });

    // The key: typed into a labelled field, kept in session storage, never in the URL.
    await page.getByLabel('API key').fill(pipeline.apiKey);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Analyse a PDF' }).waitFor();
    expect(page.url()).not.toContain(pipeline.apiKey);
    expect(await page.evaluate(() => sessionStorage.getItem('docorch.apiKey'))).toBe(pipeline.apiKey);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);

    // Drop a 40-page PDF on the drop zone (a real DataTransfer with a File), 2 pages per chunk.
    await page.getByLabel('Pages per chunk (optional)').fill('2');
    const pdf = await generatePdf({ pages: 40, seed: 81 });
    const transfer = await page.evaluateHandle((b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'forty-pages.pdf', { type: 'application/pdf' }));
      return dt;
    }, Buffer.from(pdf.bytes).toString('base64'));
    await page.dispatchEvent('#drop', 'drop', { dataTransfer: transfer });

    // The document page: the grid fills in live; a moment mid-way, then all 20 green.
    await page.locator('#chunk-grid li').first().waitFor();
    await page.waitForFunction(() => document.querySelectorAll('#chunk-grid li[data-status="succeeded"]').length >= 3, undefined, { timeout: 30_000 });
    await page.screenshot({ path: path.join(shots, '2-grid-filling.png'), fullPage: true });
    await page.waitForFunction(
      () => {
        const cells = document.querySelectorAll('#chunk-grid li');
        return cells.length === 20 && [...cells].every((c) => c.getAttribute('data-status') === 'succeeded');
      },
      undefined,
      { timeout: 60_000 },
    );
    await page.locator('#summary').waitFor();
    await expect(page.locator('#doc-status').textContent()).resolves.toBe('Completed');
    expect((await page.locator('#summary').textContent())?.length ?? 0).toBeGreaterThan(20);
    expect(await page.locator('#entities li').count()).toBeGreaterThan(0);
    expect(await page.locator('#result svg.chart rect').count()).toBe(20);
    await page.screenshot({ path: path.join(shots, '3-result.png'), fullPage: true });
    await noSeriousViolations(page, 'result');

    // Download the JSON.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download JSON' }).click()]);
    const file = path.join(shots, 'downloaded.json');
    await download.saveAs(file);
    const saved = JSON.parse(await readFile(file, 'utf8')) as { status: string; pages: { total: number }; chunks: unknown[] };
    expect(saved).toMatchObject({ status: 'completed', pages: { total: 40 } });
    expect(saved.chunks).toHaveLength(20);

    // Back to the list: the document is there; the filter narrows it.
    await page.getByRole('button', { name: '← All documents' }).click();
    await page.getByRole('link', { name: 'forty-pages.pdf' }).first().waitFor();
    await page.getByLabel('File name contains').fill('no-such-file');
    await page.getByText('No documents match.').waitFor();
    await page.context().close();
  }, 150_000);

  it('works at phone width, by keyboard, and cancels a running document', async () => {
    const page = await openPage({ width: 390, height: 844 });
    await page.goto(`${pipeline.api.baseUrl}/console/`);
    await page.getByLabel('API key').focus();
    await page.keyboard.type(pipeline.apiKey);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Analyse a PDF' }).waitFor();
    // Keyboard only: the file chooser opens from the focused "Choose a file" control.
    const pdf = await generatePdf({ pages: 120, seed: 82 });
    await page.getByLabel('Pages per chunk (optional)').fill('1');
    await page.locator('#file').setInputFiles({ name: 'long.pdf', mimeType: 'application/pdf', buffer: Buffer.from(pdf.bytes) });
    await page.locator('#chunk-grid li').first().waitFor();
    await page.screenshot({ path: path.join(shots, '4-phone-running.png'), fullPage: true });
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(width).toBeLessThanOrEqual(390); // no sideways scrolling at phone width
    await noSeriousViolations(page, 'phone, running');
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.locator('#doc-status', { hasText: 'Cancelled' }).waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(shots, '5-phone-cancelled.png'), fullPage: true });
    await page.context().close();
    expect(cspViolations).toEqual([]);
  }, 120_000);
});
