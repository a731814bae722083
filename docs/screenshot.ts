// The README's picture of the page, made from the running service so it stays true: serves the
// bundled models on a free port, opens the page in headless Chromium (the test suite's: Debian's
// chromium, driven by playwright-core), classifies the ship example and waits for its heatmap.
//   npx tsx docs/screenshot.ts [--out docs/images/page.png]

import path from 'node:path';
import { parseStrict } from '../runtime/args.js';
import { buildApp } from '../server/http/app.js';
import { defaultServeConfig } from '../server/config.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const flags = parseStrict(process.argv.slice(2), { out: { type: 'string', default: path.join(ROOT, 'docs', 'images', 'page.png') } });
const app = await buildApp(
  { ...defaultServeConfig(), models: path.join(ROOT, 'models'), workers: 1, logLevel: 'silent' },
  { logger: false },
);
const base = await app.listen({ port: 0, host: '127.0.0.1' });
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 }, deviceScaleFactor: 1 });
  await page.goto(base);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.click('#examples button[data-name="ship"]');
  await page.waitForSelector('#predictions li');
  await page.waitForFunction("document.getElementById('heatmap').naturalWidth > 0");
  await page.waitForFunction("document.getElementById('heatmap-caption').textContent.startsWith('Why')");
  await page.screenshot({ path: flags.out, fullPage: true });
  console.log(`written ${path.relative(process.cwd(), flags.out)}: ${(await page.textContent('#heatmap-caption'))?.trim()}`);
} finally {
  await browser.close();
  await app.close();
}
