// predict --format csv: a cell a spreadsheet would run as a formula is written as text (OWASP's
// leading apostrophe), and read back as it was, so --resume still knows the file.

import { cp, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { fromCsvCell, parseCsv } from '../../bin/predict/results.js';
import { ROOT, runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';

const CAT = path.join(ROOT, 'server', 'web', 'examples', 'cat.png');

t.test('a file named like a formula is text in the CSV, and a resumed run knows it', async (t) => {
  const dir = path.join(await tmpDir('vitrine-csv-'), 'in');
  await mkdir(dir);
  const names = ['=HYPERLINK("evil.example","x")x.png', '+cmd.png', "'=already quoted.png", '@SUM(1+1)x.png', 'plain.png'];
  for (const n of names) await cp(CAT, path.join(dir, n));
  const out = path.join(path.dirname(dir), 'out');
  // the files given by their names, from their folder: the paths written are those names
  const args = [
    'predict',
    ...names,
    '--out',
    out,
    '--format',
    'csv',
    '--topk',
    '1',
    '--workers',
    '1',
    '--model',
    path.join(ROOT, 'models', 'cct-cifar10'),
  ];
  const r = await runCli(args, { cwd: dir, built: true });
  t.equal(r.code, 0, r.stderr);
  const text = await readFile(path.join(out, 'predictions.csv'), 'utf8');
  const cells = parseCsv(text)
    .rows.slice(1)
    .map((row) => row.fields[0]);
  t.same(
    cells.slice().sort(),
    [`'${names[0]}`, "'+cmd.png", "''=already quoted.png", "'@SUM(1+1)x.png", 'plain.png'].sort(),
    'formula-like names prefixed',
  );
  t.same(cells.map(fromCsvCell).sort(), names.slice().sort(), 'read back, every path as it was');
  const again = await runCli([...args, '--resume'], { cwd: dir, built: true });
  t.equal(again.code, 0, again.stderr);
  t.equal(await readFile(path.join(out, 'predictions.csv'), 'utf8'), text, 'the resumed run found every file done');
});

t.test('cells: formula-like text prefixed, numbers and plain text untouched, every value read back', async (t) => {
  const { csvLine } = await import('../../bin/predict/results.js');
  const values = ['=1+1', '+1+cmd|x', '-1+1', '@SUM(A1)', '\tx', "'=x", "''=y", "'-1", '-1.25', '+1', '0.5', 'cat', "'quoted", ''];
  const line = csvLine(values);
  const cells = parseCsv(line).rows[0].fields;
  t.same(cells.slice(0, 5), ["'=1+1", "'+1+cmd|x", "'-1+1", "'@SUM(A1)", "'\tx"]);
  t.same(cells.slice(8, 11), ['-1.25', '+1', '0.5'], 'numbers stay numbers');
  t.same(cells.map(fromCsvCell), values, 'read back as written');
});
