// vitrine import reads external data only from regular files inside the model's folder, and only as
// many bytes as they hold: a link (to /etc/passwd once carried its text into the import), a device
// (/dev/zero grew memory), a FIFO (blocked the import) and a short file (passed, padded) are each
// refused in one line, and the import exits 1 without writing its output.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, symlink, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ROOT, assertOneLineError, runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';

const root = await tmpDir('vitrine-external-');
const imported = path.join(root, 'imported');
// an import writes its weights as external data: importing that folder again reads them
const first = await runCli(['import', path.join(ROOT, 'test', 'fixtures', 'foreign', 'tv-o17'), '--out', imported], { built: true });
if (first.code !== 0) throw new Error(first.stderr);

/** A copy of the imported graph whose model.onnx_data is replaced by `make`. */
async function variant(name: string, make: (data: string) => Promise<void>): Promise<string> {
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  await cp(path.join(imported, 'onnx', 'model.onnx'), path.join(dir, 'model.onnx'));
  await make(path.join(dir, 'model.onnx_data'));
  return path.join(dir, 'model.onnx');
}

t.test('the data as written imports again', async (t) => {
  const ok = await variant('intact', (data) => cp(path.join(imported, 'onnx', 'model.onnx_data'), data));
  const r = await runCli(['import', ok, '--out', path.join(root, 'out-intact')], { built: true });
  t.equal(r.code, 0, r.stderr);
});

const cases: [string, (data: string) => Promise<void>, RegExp][] = [
  [
    'a link to /etc/passwd',
    (data) => symlink('/etc/passwd', data),
    /its external data .*model\.onnx_data is a link: external data is read only from files in the folder itself/,
  ],
  ['a link to /dev/zero', (data) => symlink('/dev/zero', data), /is a link/],
  ['a FIFO', async (data) => void execFileSync('mkfifo', [data]), /is not a regular file \(a device, a FIFO or a folder\)/],
  ['a short file (4 bytes)', (data) => writeFile(data, Buffer.alloc(4)), /holds 4 bytes; the tensor needs \d+ from offset 0/],
  [
    'a file cut short',
    async (data) => {
      await cp(path.join(imported, 'onnx', 'model.onnx_data'), data);
      await truncate(data, 1000);
    },
    /holds 1000 bytes; the tensor needs \d+ from offset \d+/,
  ],
];

for (const [name, make, error] of cases) {
  t.test(`external data from ${name} is refused`, async (t) => {
    const model = await variant(name.replace(/\W+/g, '-'), make);
    const out = path.join(root, `out-${name.replace(/\W+/g, '-')}`);
    const r = await runCli(['import', model, '--out', out], { built: true, timeoutMs: 30_000 });
    t.equal(r.code, 1, 'exit 1 (and not a hang)');
    assertOneLineError(t, r.stderr, error);
    t.notOk(existsSync(out), 'nothing written');
  });
}
