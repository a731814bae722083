// vitrine eval on a Hugging Face-layout folder: its processor's rescale is honoured or refused.

import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ROOT, assertOneLineError, runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';

t.test('a processor that rescales other than x/255 is refused by eval, naming the factor', async (t) => {
  const dir = path.join(await tmpDir(), 'hf');
  await cp(path.join(ROOT, 'test', 'fixtures', 'hf-vit'), dir, { recursive: true });
  const file = path.join(dir, 'preprocessor_config.json');
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), do_rescale: false }));
  const r = await runCli(['eval', '--model', dir, '--data', path.join(dir, 'nowhere')]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /its processor rescales pixels by 1, and eval only feeds x\/255/);
});
