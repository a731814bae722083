// The web page in headless Chromium (Debian's chromium, driven by playwright-core): pick an example,
// see a label and a heatmap; upload a file, see them again.

import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { tmpDir } from '../helpers/data.js';
import { ROOT } from '../helpers/cli.js';
import { testApp, testImage } from '../helpers/server.js';
import { CHROMIUM, testWith } from '../helpers/services.js';

/** Headless Chromium (flags as the machine's notes give them), closed in teardown; page errors collected. */
async function openPage(t: Test) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // what the console shows as errors; failed requests by their URL (a missing favicon, say), less the
  // API's answers to the bad inputs the tests send on purpose
  page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && errors.push(`console: ${m.text()}`));
  page.on('response', (r) => r.status() >= 400 && !/\/attention\/|\/classify/.test(r.url()) && errors.push(`${r.status()} ${r.url()}`));
  return { page, errors };
}

testWith(t, 'the web page classifies an image and draws its heatmap', ['chromium'], async (t) => {
  const app = await testApp(t);
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  const { page, errors } = await openPage(t);
  await page.goto(base);
  await page.waitForSelector('#model option', { state: 'attached' });
  t.match(await page.textContent('#model'), /vit-cifar10 \(cpu\)/, 'models listed');
  // a favicon inline, so no browser asks the server for /favicon.ico (a 404 in the console)
  t.match(await page.getAttribute('link[rel="icon"]', 'href'), /^data:image\/svg\+xml,/, 'the page carries its icon');
  // from the keyboard: the drop zone takes the focus and Enter opens the file picker
  const chooser = page.waitForEvent('filechooser', { timeout: 5000 });
  await page.locator('#drop').press('Enter');
  t.ok(await chooser, 'Enter on the drop zone opens the file picker');

  // A bundled example; the relevance shown first is asked with the classification (one run).
  const asked = page.waitForRequest((r) => r.url().includes('/classify'));
  await page.click('#examples button[data-name="cat"]');
  t.match((await asked).url(), /attention=relevance/, 'the classification asks for the relevance map it shows first');
  await page.waitForSelector('#predictions li');
  const first = await page.textContent('#predictions li .label');
  t.ok(
    ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'].includes(first!.trim()),
    `a label is shown: ${first}`,
  );
  // Page-side expressions are strings: they run in the browser, not here.
  await page.waitForFunction("document.getElementById('heatmap').naturalWidth > 0");
  t.equal(await page.evaluate("document.getElementById('heatmap').naturalWidth"), 256, 'the heatmap is drawn');

  // Relevance is the default: "why" the top class; clicking another prediction explains that one.
  await page.waitForFunction("document.getElementById('heatmap-caption').textContent.startsWith('Why')");
  t.equal(await page.textContent('#heatmap-caption'), `Why "${first!.trim()}": relevance`);
  const second = (await page.textContent('#predictions li:nth-child(2) .label'))!.trim();
  const topMap = await page.getAttribute('#heatmap', 'src');
  await page.click('#predictions li:nth-child(2) button');
  await page.waitForFunction(
    `document.getElementById('heatmap').src !== ${JSON.stringify(topMap)} && document.getElementById('heatmap').naturalWidth > 0`,
  );
  t.equal(await page.textContent('#heatmap-caption'), `Why "${second}": relevance`);
  t.equal(await page.locator('#predictions button.chosen').count(), 1, 'the explained class is marked');
  t.match(await page.getAttribute('#predictions button.chosen', 'title'), new RegExp(second));
  t.equal(await page.isHidden('#head-row'), true, 'head fusion does not apply to relevance');
  // Its parts, for the same class.
  for (const [method, caption] of [
    ['chefer', 'attention relevance'],
    ['grad-input', 'gradient × input'],
  ]) {
    const shown = await page.getAttribute('#heatmap', 'src');
    await page.selectOption('#method', method);
    await page.waitForFunction(
      `document.getElementById('heatmap').src !== ${JSON.stringify(shown)} && document.getElementById('heatmap').naturalWidth > 0`,
    );
    t.equal(await page.textContent('#heatmap-caption'), `Why "${second}": ${caption}`);
  }

  // Another method redraws it.
  const before = await page.getAttribute('#heatmap', 'src');
  await page.selectOption('#method', 'cls');
  await page.waitForFunction(`document.getElementById('heatmap').src !== ${JSON.stringify(before)}`);
  t.match(await page.textContent('#heatmap-caption'), /\[CLS\] attention, layer 4/);

  // An uploaded file.
  const file = path.join(await tmpDir(), 'upload.jpg');
  await writeFile(file, await testImage('jpeg', 96));
  const old = await page.getAttribute('#heatmap', 'src');
  await page.setInputFiles('#file', file);
  await page.waitForFunction(
    `document.getElementById('heatmap').src !== ${JSON.stringify(old)} && document.getElementById('heatmap').naturalWidth > 0`,
  );
  t.equal(await page.locator('#predictions li').count(), 5, 'five predictions with bars');
  t.match(await page.textContent('#timings'), /inference [\d.]+ ms/);
  // A wide photo: the Image panel shows the centre square the model takes, like the heatmap.
  t.equal(await page.evaluate("getComputedStyle(document.getElementById('original')).objectFit"), 'cover');

  // A failed upload leaves no old predictions or heatmap beside the error, which is in view.
  const broken = path.join(await tmpDir(), 'notes.png');
  await writeFile(broken, 'not an image at all');
  await page.setInputFiles('#file', broken);
  await page.waitForSelector('#status.error');
  t.match(await page.textContent('#status'), /\w+: .+/, `the error is shown: ${await page.textContent('#status')}`);
  t.equal(await page.isHidden('#output'), true, 'the previous result is gone');
  t.equal(await page.locator('#predictions li').count(), 0);
  t.equal(
    await page.evaluate(
      "(() => { const r = document.getElementById('status').getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; })()",
    ),
    true,
    'the error is on screen',
  );

  // Choosing another model classifies the current image again.
  await page.click('#examples button[data-name="ship"]');
  await page.waitForFunction("!document.getElementById('output').hidden && document.getElementById('heatmap').naturalWidth > 0");
  // Averaging with the mirror image classifies the current image again, asking for tta=flip.
  const flipped = page.waitForResponse((r) => r.url().includes('/classify') && r.url().includes('tta=flip'));
  await page.check('#tta');
  const flipRes = await flipped;
  t.equal(
    flipRes.status(),
    200,
    `the page asks for flip test-time augmentation: ${flipRes.url()} ${flipRes.status() === 200 ? '' : await flipRes.text()}`,
  );
  await page.waitForFunction("document.getElementById('heatmap').naturalWidth > 0");
  // unchecked, it classifies once more without it: waited for, so that no answer races the next step
  const unflipped = page.waitForResponse((r) => r.url().includes('/classify') && !r.url().includes('tta=flip'));
  await page.uncheck('#tta');
  t.equal((await unflipped).status(), 200);
  await page.waitForFunction("document.getElementById('heatmap').naturalWidth > 0");
  await page.selectOption('#model', 'plain');
  await page.waitForFunction("document.getElementById('status').textContent.includes('no attention outputs')");
  t.equal(await page.locator('#predictions li').count(), 5, 'predictions from the other model');
  t.equal(await page.getAttribute('#heatmap', 'src'), null, 'no heatmap for a model without attention');
  t.equal(await page.isHidden('#heatmap-figure'), true, 'and no empty image where it would be');
  t.equal(await page.isHidden('#controls'), true, 'nor its controls');
  t.match(await page.textContent('#status'), /vitrine import/);

  // Answers out of order: the map of a classification still drawing when another model is chosen
  // comes back last, and the page shows the newer answer, not the stale map over it.
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const held = new Promise<void>((resolve) =>
    page.route('**/attention/**', async (route) => {
      resolve();
      await gate;
      await route.continue();
    }),
  );
  await page.selectOption('#model', 'vit-cifar10');
  await held; // the vit-cifar10 classification is answered and its map is on its way
  await page.selectOption('#model', 'plain');
  await page.waitForFunction("document.getElementById('status').textContent.includes('no attention outputs')");
  const settled = Number(await page.evaluate('document.documentElement.dataset.drawsSettled ?? 0'));
  release();
  // the page has done what it does with the stale answer (dropped it, or wrongly drawn it)
  await page.waitForFunction(`Number(document.documentElement.dataset.drawsSettled ?? 0) > ${settled}`);
  t.match(await page.textContent('#status'), /no attention outputs/, "the stale map's answer does not clear the newer status");
  t.equal(await page.getAttribute('#heatmap', 'src'), null, 'nor draws its map for a model without attention');
  t.equal(await page.isHidden('#heatmap-figure'), true);
  await page.unroute('**/attention/**');
  t.same(errors, [], 'no script errors');
});

testWith(t, 'the page explains its maps, offers examples that fit the model, and fits a phone', ['chromium'], async (t) => {
  // the bundled vit-cifar10, and the same files with other labels (a model of other classes)
  const root = await tmpDir('vitrine-page-');
  await cp(path.join(ROOT, 'models', 'vit-cifar10'), path.join(root, 'vit-cifar10'), { recursive: true });
  await cp(path.join(ROOT, 'models', 'vit-cifar10'), path.join(root, 'pets'), { recursive: true });
  const config = JSON.parse(await readFile(path.join(root, 'pets', 'config.json'), 'utf8'));
  const pets = Array.from({ length: 10 }, (_, i) => `pet${i}`);
  config.id2label = Object.fromEntries(pets.map((p, i) => [String(i), p]));
  config.label2id = Object.fromEntries(pets.map((p, i) => [p, i]));
  await writeFile(path.join(root, 'pets', 'config.json'), JSON.stringify(config));
  const app = await testApp(t, { models: root, defaultModel: 'vit-cifar10' });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  const { page, errors } = await openPage(t);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(base);
  await page.waitForSelector('#examples button', { state: 'attached' });
  const noOverflow = () =>
    page.evaluate('document.documentElement.scrollWidth <= document.documentElement.clientWidth') as Promise<boolean>;
  t.equal(
    await page.getAttribute('#examples button:first-child', 'data-name'),
    'ship',
    'the first example is the ship, which the bundled models get right',
  );
  await page.click('#examples button[data-name="ship"]');
  await page.waitForFunction("document.getElementById('heatmap').naturalWidth > 0 && !document.getElementById('scale').hidden");
  t.equal((await page.textContent('#predictions li .label'))!.trim(), 'ship', 'the first example is answered right');

  // the colour scale: the map's own lowest and highest values, the colormap between them
  const range = (await page.evaluate(
    "[document.getElementById('scale-low').textContent, document.getElementById('scale-high').textContent]",
  )) as string[];
  t.ok(
    range.every((v) => Number.isFinite(Number(v))) && Number(range[0]) < Number(range[1]),
    `the scale shows the map's range: ${range.join(' to ')}`,
  );
  t.match(await page.evaluate("getComputedStyle(document.getElementById('scale-bar')).backgroundImage"), /linear-gradient/);
  t.match(await page.textContent('#method-help'), /the default.*faithfulness/i, 'a sentence on the method, the default and why');
  // the note on a nearly uniform map appears exactly when the range says so
  for (const method of ['rollout', 'cls', 'relevance']) {
    const shown = await page.getAttribute('#heatmap', 'src');
    await page.selectOption('#method', method);
    await page.waitForFunction(`document.getElementById('heatmap').src !== ${JSON.stringify(shown)}`);
    const [low, high] = (await page.evaluate(
      "[document.getElementById('scale-low').textContent, document.getElementById('scale-high').textContent].map(Number)",
    )) as number[];
    const uniform = (high - low) / Math.abs(high) < 0.25;
    t.equal(await page.isHidden('#scale-note'), !uniform, `${method}: ${low} to ${high}, the note ${uniform ? 'shown' : 'hidden'}`);
    t.equal(
      await page.textContent('#method-help'),
      await page.evaluate(`METHOD_HELP[${JSON.stringify(method)}]`),
      `${method}: its sentence`,
    );
  }
  t.ok(await noOverflow(), 'no horizontal overflow at 390 px with a result shown');
  // a map whose values all lie near its highest (an imported model's last-layer cls map, 0.83 to 1) is
  // said to be nearly uniform, with its spread
  await page.evaluate("showScale('0.83,1', 'cls')");
  t.equal(await page.isHidden('#scale-note'), false, 'a nearly uniform map gets its note');
  t.match(await page.textContent('#scale-note'), /This cls map is nearly uniform: its values differ by 17% of its highest/);
  t.equal(await page.textContent('#scale-low'), '0.830');
  await page.evaluate("showScale('0.1,1', 'cls')");
  t.equal(await page.isHidden('#scale-note'), true, 'a map with contrast gets none');

  // every method side by side
  await page.click('#compare');
  await page.waitForFunction('Number(document.documentElement.dataset.stripDrawn ?? 0) > 0');
  const listed = (await (await fetch(`${base}/models`)).json()) as { models: { name: string; methods: string[] }[] };
  const methods = listed.models.find((m) => m.name === 'vit-cifar10')!.methods;
  t.equal(await page.locator('#strip figure img').count(), methods.length, `one map per method (${methods.join(', ')})`);
  await page.waitForFunction("[...document.querySelectorAll('#strip img')].every((i) => i.naturalWidth > 0)");
  t.ok(await noOverflow(), 'the strip fits too');

  // a model of other classes: no CIFAR-10 examples; the user's own uploads instead
  await page.selectOption('#model', 'pets');
  await page.waitForFunction("document.getElementById('examples-block').hidden");
  t.equal(await page.locator('#examples button').count(), 0, 'no CIFAR-10 examples for a model of other classes');
  const file = path.join(root, 'mine.png');
  await writeFile(file, await testImage('png', 48));
  await page.setInputFiles('#file', file);
  await page.waitForFunction("!document.getElementById('examples-block').hidden");
  t.equal(await page.locator('#examples button').count(), 1, 'the upload is offered again');
  t.match(await page.textContent('#examples-title'), /Your recent images/);
  await page.waitForFunction("document.getElementById('heatmap').naturalWidth > 0");
  t.match(await page.textContent('#predictions li .label'), /pet\d/, 'its own labels');
  t.ok(await noOverflow(), 'no horizontal overflow at 390 px');
  await page.selectOption('#model', 'vit-cifar10');
  await page.waitForFunction("document.querySelectorAll('#examples button').length === 10");
  t.same(errors, [], 'no script errors');
});

testWith(t, 'the page on a model vitrine imported: a stretched input, rollout and relevance maps', ['chromium'], async (t) => {
  const { importCommand } = await import('../../bin/import.js');
  const root = await tmpDir('vitrine-imported-page-');
  await importCommand([path.join(ROOT, 'test', 'fixtures', 'foreign', 'hf-deit'), '--out', path.join(root, 'deit')], () => {});
  const app = await testApp(t, { models: root, defaultModel: 'deit' });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  const { page, errors } = await openPage(t);
  await page.goto(base);
  await page.waitForSelector('#model option', { state: 'attached' });
  const file = path.join(root, 'wide.jpg');
  await writeFile(file, await testImage('jpeg', 96));
  await page.setInputFiles('#file', file);
  await page.waitForFunction("document.getElementById('heatmap').naturalWidth > 0");
  t.match(await page.textContent('#predictions li .label'), /apple|boat|cloud|door|eagle/, 'its own labels');
  t.equal(
    await page.textContent('#heatmap-caption'),
    `Why "${(await page.textContent('#predictions li .label'))!.trim()}": relevance`,
    'relevance for an imported model',
  );
  t.match(await page.textContent('#original-caption'), /stretched/, 'the page says the image is stretched, as its processor does');
  t.equal(await page.evaluate("getComputedStyle(document.getElementById('original')).objectFit"), 'fill');
  const before = await page.getAttribute('#heatmap', 'src');
  await page.selectOption('#method', 'rollout');
  await page.waitForFunction(
    `document.getElementById('heatmap').src !== ${JSON.stringify(before)} && document.getElementById('heatmap').naturalWidth > 0`,
  );
  t.equal(await page.textContent('#heatmap-caption'), 'Attention rollout');
  t.same(errors, [], 'no script errors');
});

testWith(t, 'a hostile model name or label stays text on the page', ['chromium'], async (t) => {
  const { cp, readFile: read } = await import('node:fs/promises');
  const { testModels } = await import('../helpers/server.js');
  const root = await tmpDir('vitrine-hostile-');
  // a folder name may hold quotes and angle brackets; the page once put it into innerHTML
  const name = `x"><img src=x onerror="window.__pwned='name'">`;
  await cp(path.join(await testModels(), 'vit-cifar10'), path.join(root, name), { recursive: true });
  const config = path.join(root, name, 'config.json');
  const labels = Array.from({ length: 10 }, (_, i) => `<img src=y onerror="window.__pwned='label ${i}'">`);
  await writeFile(config, JSON.stringify({ ...JSON.parse(await read(config, 'utf8')), labels }));
  const app = await testApp(t, { models: root, defaultModel: name });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  const { page, errors } = await openPage(t);
  await page.goto(base);
  await page.waitForSelector('#model option', { state: 'attached' });
  t.equal(await page.textContent('#model option'), `${name} (cpu)`, 'the name shown as it is');
  t.equal(await page.evaluate('document.querySelectorAll("#model img, #predictions img").length'), 0, 'no element made of it');
  // a model of other labels is offered no CIFAR-10 examples: an upload it is
  const upload = path.join(root, 'cat.png');
  await cp(path.join(ROOT, 'server', 'web', 'examples', 'cat.png'), upload);
  await page.setInputFiles('#file', upload);
  await page.waitForSelector('#predictions li');
  t.equal((await page.textContent('#predictions li .label'))!.startsWith('<img src=y'), true, 'a label shown as text');
  t.equal(await page.evaluate('document.querySelectorAll("#predictions img").length'), 0);
  await page.waitForFunction("document.getElementById('heatmap').naturalWidth > 0");
  t.equal(await page.evaluate('window.__pwned'), undefined, 'nothing of it ran');
  t.same(errors, []);
});

testWith(t, 'the model list follows models unloaded and loaded while serving, the chosen one kept', ['chromium'], async (t) => {
  const app = await testApp(t, { models: path.join(ROOT, 'models'), defaultModel: 'cct-cifar10', modelControl: 'explicit' });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  const { page, errors } = await openPage(t);
  await page.goto(base);
  await page.waitForSelector('#model option', { state: 'attached' });
  const names = () => page.evaluate("[...document.getElementById('model').options].map((o) => o.value).join(',')");
  t.equal(await names(), 'cct-cifar10,vit-cifar10');
  await page.selectOption('#model', 'vit-cifar10');
  // shown again (as after switching tabs): the list is read again at once rather than at the next 10 s
  const shown = "document.dispatchEvent(new Event('visibilitychange'))";
  t.equal((await app.inject({ method: 'POST', url: '/v2/repository/models/cct-cifar10/unload' })).statusCode, 200);
  await page.evaluate(shown);
  await page.waitForFunction("document.getElementById('model').options.length === 1");
  t.equal(await names(), 'vit-cifar10', 'the unloaded model left the list');
  t.equal((await app.inject({ method: 'POST', url: '/v2/repository/models/cct-cifar10/load' })).statusCode, 200);
  await page.evaluate(shown);
  await page.waitForFunction("document.getElementById('model').options.length === 2");
  t.equal(await page.inputValue('#model'), 'vit-cifar10', 'the chosen model stays chosen');
  t.same(errors, [], 'no script errors');
});
