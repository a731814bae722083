// Writing several files all or none: a write that fails (a full disk, say) or a rename that fails
// halfway leaves every file as it was, and no temp file behind. The failures are made by file
// operations (node:fs's, passed in) whose writeFile or rename fails on a given call.

import * as realFs from 'node:fs';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { type FileOps, writeFilesAtomic } from '../../../trainer/io/atomic.js';
import { defaultLabels, exportModel } from '../../../trainer/export.js';
import { ViT } from '../../../trainer/vit/model.js';
import { SEED_CONFIG } from '../../../trainer/vit/config.js';

/** node:fs's promises whose <method> fails with `code` on its nth call; `calls` counts them. */
function failing(method: 'writeFile' | 'rename', nth: number, code: string) {
  const counted = { calls: 0 };
  const real = realFs.promises[method] as (...args: unknown[]) => Promise<void>;
  const io = {
    ...realFs.promises,
    [method]: (...args: unknown[]) =>
      ++counted.calls === nth ? Promise.reject(Object.assign(new Error(`${code}: made to fail`), { code })) : real(...args),
  } as FileOps;
  return { io, counted };
}

async function folder(): Promise<{ dir: string; files: string[] }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vitrine-atomic-'));
  const files = ['a.bin', 'b.json', 'c.txt'].map((f) => path.join(dir, f));
  await writeFile(files[0], 'old a');
  await writeFile(files[1], 'old b');
  return { dir, files }; // c.txt is new
}

for (const [method, nth, what] of [
  ['writeFile', 2, 'the second file cannot be written (ENOSPC)'],
  ['rename', 2, 'the second rename fails, after the first replaced a.bin'],
  ['rename', 3, 'the last rename fails, after two files were replaced'],
] as const) {
  t.test(`${what}: nothing changes`, async (t) => {
    const { io } = failing(method, nth, method === 'writeFile' ? 'ENOSPC' : 'EIO');
    const { dir, files } = await folder();
    await t.rejects(
      writeFilesAtomic(
        [
          [files[0], 'new a'],
          [files[1], 'new b'],
          [files[2], 'new c'],
        ],
        io,
      ),
      /made to fail/,
    );
    t.equal(await readFile(files[0], 'utf8'), 'old a');
    t.equal(await readFile(files[1], 'utf8'), 'old b');
    t.same((await readdir(dir)).sort(), ['a.bin', 'b.json'], 'the new file is not there, nor any temp or backup');
  });
}

t.test('when nothing fails, every file is new and nothing else is left', async (t) => {
  const { dir, files } = await folder();
  await writeFilesAtomic([
    [files[0], 'new a'],
    [files[1], 'new b'],
    [files[2], 'new c'],
  ]);
  t.same(await Promise.all(files.map((f) => readFile(f, 'utf8'))), ['new a', 'new b', 'new c']);
  t.same((await readdir(dir)).sort(), ['a.bin', 'b.json', 'c.txt']);
});

t.test('an export whose writing fails leaves the earlier export as it was', async (t) => {
  const { io, counted } = failing('writeFile', 3, 'ENOSPC');
  const dir = path.join(await mkdtemp(path.join(os.tmpdir(), 'vitrine-atomic-')), 'm');
  await exportModel(new ViT(SEED_CONFIG, 1), defaultLabels(10), dir);
  const before = await Promise.all(
    ['onnx/model.onnx', 'onnx/relevance.onnx', 'onnx/relevance-light.onnx', 'config.json', 'preprocessor_config.json'].map((f) =>
      readFile(path.join(dir, f)),
    ),
  );
  await t.rejects(exportModel(new ViT(SEED_CONFIG, 2), defaultLabels(10), dir, { io }), /cannot write to .*ENOSPC/);
  t.equal(counted.calls, 3, 'the export went through the failing writes, and stopped at the third');
  const after = await Promise.all(
    ['onnx/model.onnx', 'onnx/relevance.onnx', 'onnx/relevance-light.onnx', 'config.json', 'preprocessor_config.json'].map((f) =>
      readFile(path.join(dir, f)),
    ),
  );
  t.ok(
    after.every((b, i) => b.equals(before[i])),
    'all five files as the first export wrote them',
  );
  t.same((await readdir(dir)).sort(), ['config.json', 'onnx', 'preprocessor_config.json']);
  t.same((await readdir(path.join(dir, 'onnx'))).sort(), ['model.onnx', 'relevance-light.onnx', 'relevance.onnx'], 'no temp files left');
});
