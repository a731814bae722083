// vitrine predict on inputs that are not regular files behind image names: a link to a FIFO once
// hung the run past two SIGTERMs, one to /dev/zero grew it without bound. Each is now a record with
// its error, and the images beside them are classified.

import { execFileSync } from 'node:child_process';
import { cp, mkdir, readFile, symlink } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ROOT, runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';

t.test('a FIFO, /dev/zero and a socket-like special file behind .png names are error records; the run ends', async (t) => {
  const dir = path.join(await tmpDir('vitrine-special-'), 'in');
  await mkdir(dir);
  await cp(path.join(ROOT, 'server', 'web', 'examples', 'cat.png'), path.join(dir, 'cat.png'));
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  await symlink(path.join(dir, 'fifo'), path.join(dir, 'pipe.png'));
  await symlink('/dev/zero', path.join(dir, 'zero.png'));
  await symlink(path.join(dir, 'cat.png'), path.join(dir, 'linked-cat.png'));
  const out = path.join(path.dirname(dir), 'out');
  const r = await runCli(['predict', dir, '--out', out, '--workers', '1'], { built: true, timeoutMs: 60_000 });
  t.equal(r.code, 0, r.stderr);
  const records = (await readFile(path.join(out, 'predictions.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const by = (name: string) => records.find((x) => x.path === path.join(dir, name));
  for (const name of ['pipe.png', 'zero.png']) {
    t.equal(by(name)?.error?.code, 'VIT_NOT_A_FILE', `${name}: an error record`);
    t.match(by(name)?.error?.message, /not a regular file/);
  }
  t.ok(by('cat.png')?.predictions, 'the image beside them is classified');
  t.ok(by('linked-cat.png')?.predictions, 'a link to a regular file is read');
});
