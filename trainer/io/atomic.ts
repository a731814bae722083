// Writes that never leave a file half-written: data goes to a temp file beside the target, then a
// rename (atomic on one file system) puts it in place. Several files are written all or none: every
// temp file is written before any rename, and a rename that fails puts back what the earlier ones
// replaced. The file operations are a parameter (node:fs by default) so that tests can make a
// given write or rename fail without replacing node:fs for the whole process.

import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';

/** The file operations the writes use: node:fs's by default. */
export type FileOps = Pick<typeof fs, 'writeFile' | 'rename' | 'rm' | 'link' | 'copyFile'>;

const tempFor = (file: string, kind = 'tmp') =>
  path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.${kind}`);

/** A copy of what `file` holds now, beside it (a hard link where the file system has them). */
async function keep(file: string, io: FileOps): Promise<string> {
  const backup = tempFor(file, 'old');
  await io.link(file, backup).catch(() => io.copyFile(file, backup));
  return backup;
}

/** Writes all files or none. */
export async function writeFilesAtomic(files: ReadonlyArray<readonly [string, Uint8Array | string]>, io: FileOps = fs): Promise<void> {
  const temps = files.map(([file]) => tempFor(file));
  const backups = new Map<string, string>();
  const placed: string[] = [];
  const removeAll = (names: Iterable<string>) => Promise.all([...names].map((t) => io.rm(t, { force: true })));
  try {
    for (let i = 0; i < files.length; i++) await io.writeFile(temps[i], files[i][1]);
    for (const [file] of files) if (existsSync(file)) backups.set(file, await keep(file, io));
    for (let i = 0; i < files.length; i++) {
      await io.rename(temps[i], files[i][0]);
      placed.push(files[i][0]);
    }
  } catch (err) {
    // Put back what was replaced; remove what was new.
    for (const file of placed) {
      const backup = backups.get(file);
      if (backup) {
        await io.rename(backup, file);
        backups.delete(file);
      } else await io.rm(file, { force: true });
    }
    await removeAll(temps);
    await removeAll(backups.values());
    throw err;
  }
  await removeAll(backups.values());
}

export const writeFileAtomic = (file: string, data: Uint8Array | string, io: FileOps = fs) => writeFilesAtomic([[file, data]], io);
