// Writing several files all or none: a write that fails (a full disk, say) or a rename that fails
// halfway leaves every file as it was, and no temp file behind. The failures are made by a node:fs
// whose writeFile or rename fails on a given call.

import * as realFs from 'node:fs';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';

/** node:fs whose promises.<method> fails with `code` on its nth call. */
function failing(method: 'writeFile' | 'rename', nth: number, code: string) {
  let calls = 0;
  const real = realFs.promises[method] as (...args: unknown[]) => Promise<void>;
  const promises = {
    ...realFs.promises,
    [method]: (...args: unknown[]) => (++calls === nth ? Promise.reject(Object.assign(new Error(`${code}: made to fail`), { code })) : real(...args)),
  };
  return { ...realFs, promises, default: { ...realFs, promises } };
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
    const { writeFilesAtomic } = await t.mockImport<typeof import('../../../trainer/io/atomic.js')>('../../../trainer/io/atomic.js', { 'node:fs': failing(method, nth, method === 'writeFile' ? 'ENOSPC' : 'EIO') });
    const { dir, files } = await folder();
    await t.rejects(writeFilesAtomic([[files[0], 'new a'], [files[1], 'new b'], [files[2], 'new c']]), /made to fail/);
    t.equal(await readFile(files[0], 'utf8'), 'old a');
    t.equal(await readFile(files[1], 'utf8'), 'old b');
    t.same((await readdir(dir)).sort(), ['a.bin', 'b.json'], 'the new file is not there, nor any temp or backup');
  });
}

t.test('when nothing fails, every file is new and nothing else is left', async (t) => {
  const { writeFilesAtomic } = await import('../../../trainer/io/atomic.js');
  const { dir, files } = await folder();
  await writeFilesAtomic([[files[0], 'new a'], [files[1], 'new b'], [files[2], 'new c']]);
  t.same(await Promise.all(files.map((f) => readFile(f, 'utf8'))), ['new a', 'new b', 'new c']);
  t.same((await readdir(dir)).sort(), ['a.bin', 'b.json', 'c.txt']);
});

t.test('an export whose writing fails leaves the earlier export as it was', async (t) => {
  const { exportModel } = await t.mockImport<typeof import('../../../trainer/export.js')>('../../../trainer/export.js', { 'node:fs': failing('writeFile', 3, 'ENOSPC') });
  const real = await import('../../../trainer/export.js');
  const { ViT } = await import('../../../trainer/vit/model.js');
  const { SEED_CONFIG } = await import('../../../trainer/vit/config.js');
  const dir = path.join(await mkdtemp(path.join(os.tmpdir(), 'vitrine-atomic-')), 'm');
  await real.exportModel(new ViT(SEED_CONFIG, 1), real.defaultLabels(10), dir);
  const before = await Promise.all(['onnx/model.onnx', 'onnx/relevance.onnx', 'config.json', 'preprocessor_config.json'].map((f) => readFile(path.join(dir, f))));
  await t.rejects(exportModel(new ViT(SEED_CONFIG, 2), real.defaultLabels(10), dir), /cannot write to .*ENOSPC/);
  const after = await Promise.all(['onnx/model.onnx', 'onnx/relevance.onnx', 'config.json', 'preprocessor_config.json'].map((f) => readFile(path.join(dir, f))));
  t.ok(after.every((b, i) => b.equals(before[i])), 'all four files as the first export wrote them');
  t.same((await readdir(dir)).sort(), ['config.json', 'onnx', 'preprocessor_config.json']);
  t.same((await readdir(path.join(dir, 'onnx'))).sort(), ['model.onnx', 'relevance.onnx'], 'no temp files left');
});
