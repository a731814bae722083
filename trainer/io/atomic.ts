// Writes that never leave a file half-written: data goes to a temp file beside the target, then a
// rename (atomic on one file system) puts it in place.

import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

const tempFor = (file: string) => path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);

/** Writes all files or none: every temp file is written before any rename. */
export async function writeFilesAtomic(files: ReadonlyArray<readonly [string, Uint8Array | string]>): Promise<void> {
  const temps = files.map(([file]) => tempFor(file));
  try {
    for (let i = 0; i < files.length; i++) await fs.writeFile(temps[i], files[i][1]);
    for (let i = 0; i < files.length; i++) await fs.rename(temps[i], files[i][0]);
  } catch (err) {
    await Promise.all(temps.map((t) => fs.rm(t, { force: true })));
    throw err;
  }
}

export const writeFileAtomic = (file: string, data: Uint8Array | string) => writeFilesAtomic([[file, data]]);
