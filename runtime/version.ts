// vitrine's version, as package.json gives it: the one place it is written. Found by walking up from
// this file, so that it is read alike from the sources (runtime/) and from the build (dist/runtime/).

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

function readVersion(): string {
  for (let dir = import.meta.dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'vitrine' && pkg.version) return pkg.version;
    }
    if (path.dirname(dir) === dir) throw new Error(`vitrine's package.json was not found above ${import.meta.dirname}`);
  }
}

export const VITRINE_VERSION = readVersion();
