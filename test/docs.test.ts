// The documentation says what is true: every relative link (and its #anchor) leads somewhere, and
// every command shown names a command, flag, npm script, file and route that exist. The README is
// short, and docs/benchmarks.md is what bench/results/ makes.

import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { BENCHMARKS_PAGE, renderBenchmarks } from '../bench/report.js';
import { BUILT_CLI, ROOT } from './helpers/cli.js';
import { testApp } from './helpers/server.js';

const run = promisify(execFile);
const PAGES = [
  'README.md',
  'CONTRIBUTING.md',
  'CHANGELOG.md',
  ...readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
const read = (page: string) => readFileSync(path.join(ROOT, page), 'utf8');

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[`*_]/g, '')
    .replace(/[^\p{L}\p{N} -]/gu, '')
    .replace(/ /g, '-');

function anchorsOf(page: string): Set<string> {
  const out = new Set<string>();
  let fence = false;
  for (const line of read(page).split('\n')) {
    if (line.startsWith('```')) fence = !fence;
    const m = !fence && /^#{1,6} (.+)$/.exec(line);
    if (m) out.add(slug(m[1]));
  }
  return out;
}

/** The text outside code blocks, and the lines of the shell blocks. */
function parts(page: string): { prose: string; shell: string[] } {
  const prose: string[] = [];
  const shell: string[] = [];
  let fence: string | null = null;
  for (const line of read(page).split('\n')) {
    const open = /^```(\w*)/.exec(line);
    if (open) {
      fence = fence === null ? open[1] : null;
      continue;
    }
    if (fence === null) prose.push(line);
    else if (fence === 'sh' || fence === 'bash' || fence === '') shell.push(line);
  }
  return { prose: prose.join('\n'), shell };
}

t.test('every relative link in the docs leads to a file, and every #anchor to a heading', async (t) => {
  const broken: string[] = [];
  let links = 0;
  for (const page of PAGES) {
    const prose = parts(page).prose.replace(/`[^`\n]*`/g, '');
    for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1];
      if (/^[a-z]+:/.test(target)) continue;
      links++;
      const [file, anchor] = target.split('#');
      const resolved = file === '' ? page : path.normalize(path.join(path.dirname(page), file));
      if (!existsSync(path.join(ROOT, resolved))) broken.push(`${page}: ${target} (no ${resolved})`);
      else if (anchor && resolved.endsWith('.md') && !anchorsOf(resolved).has(anchor)) broken.push(`${page}: ${target} (no heading)`);
    }
  }
  t.ok(links > 40, `links read (${links})`);
  t.same(broken, []);
});

t.test('every command shown names commands, flags, scripts and files that exist', async (t) => {
  const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
  const usage = new Map<string, string>();
  const usageOf = async (command: string) => {
    if (!usage.has(command)) {
      const r = await run(process.execPath, [BUILT_CLI, command, '--help']).catch((err) => err as { stdout: string; stderr: string });
      usage.set(command, `${r.stdout}${r.stderr}`);
    }
    return usage.get(command)!;
  };
  const wrong: string[] = [];
  let commands = 0;
  for (const page of PAGES) {
    for (const raw of parts(page).shell) {
      const line = raw.replace(/\s+#.*$/, '').trim();
      // commands after && or ; are commands too
      for (const part of line.split(/\s*(?:&&|;)\s*/)) {
        const words = part.split(/\s+/);
        const vitrine = words[0] === 'npx' && words[1] === 'vitrine' ? 2 : words[0] === 'vitrine' ? 1 : -1;
        if (vitrine > 0 && words[vitrine] && !words[vitrine].startsWith('-')) {
          commands++;
          const text = await usageOf(words[vitrine]);
          if (!/usage: vitrine/.test(text)) wrong.push(`${page}: vitrine ${words[vitrine]}: no such command`);
          for (const flag of words.filter((w) => /^--[a-z]/.test(w)).map((w) => w.split('=')[0]))
            if (!text.includes(flag)) wrong.push(`${page}: vitrine ${words[vitrine]} has no ${flag}`);
        }
        if (words[0] === 'npm' && words[1] === 'run') {
          commands++;
          const script = words[2];
          if (!(script in scripts)) wrong.push(`${page}: npm run ${script}: no such script`);
          const file = /^tsx (bench\/[\w-]+\.ts)$/.exec(scripts[script] ?? '')?.[1];
          const source = file ? readFileSync(path.join(ROOT, file), 'utf8') : '';
          for (const flag of file ? words.slice(3).filter((w) => /^--[a-z]/.test(w)) : [])
            if (!source.includes(`'${flag.slice(2)}'`) && !source.includes(`${flag.slice(2)}:`))
              wrong.push(`${page}: npm run ${script} has no ${flag}`);
        }
        // the repository's own files named in a command exist (outputs go to runs/, results/, models/<new>)
        for (const w of words) {
          const file = w.replace(/^@/, '').replace(/['"]/g, '');
          if (/^(server|docker|deploy|bench|test|docs|trainer|runtime|bin)\/[\w./-]+$/.test(file) && !file.includes('*')) {
            commands++;
            if (!existsSync(path.join(ROOT, file))) wrong.push(`${page}: ${file} does not exist`);
          }
        }
      }
    }
  }
  t.ok(commands > 40, `commands read (${commands})`);
  t.same(wrong, []);
});

t.test('every route a curl in the docs asks for is served', async (t) => {
  // with every route there is (the repository's serve with --model-control explicit)
  const app = await testApp(t, { models: path.join(ROOT, 'models'), defaultModel: 'cct-cifar10', modelControl: 'explicit' });
  const missing: string[] = [];
  let routes = 0;
  for (const page of PAGES) {
    for (const line of parts(page).shell.filter((l) => /^\s*curl /.test(l))) {
      const url =
        /https?:\/\/(?:localhost|127\.0\.0\.1)(?::\d+)?(\/[^\s"'?]*)/.exec(line)?.[1] ?? /\blocalhost:\d+(\/[^\s"'?]*)/.exec(line)?.[1];
      if (!url) continue;
      routes++;
      const method = /(^|\s)(-F|-d|--data|--data-binary|-X POST)\s/.test(line) ? 'POST' : 'GET';
      const r = await app.inject({ method, url: url.replace(/<[^>]+>/g, 'x') });
      if (r.statusCode === 404 && r.json().code === 'VIT_NOT_FOUND') missing.push(`${page}: ${method} ${url}`);
    }
  }
  t.ok(routes >= 4, `curl commands read (${routes})`);
  t.same(missing, []);
});

t.test('the README is short: at most 300 lines, none over 300 characters', async (t) => {
  const lines = read('README.md').split('\n');
  t.ok(lines.length <= 301, `${lines.length - 1} lines`);
  t.same(
    lines.filter((l) => l.length > 300),
    [],
  );
  t.ok(existsSync(path.join(ROOT, 'docs', 'images', 'page.png')), 'its picture of the page exists (npx tsx docs/screenshot.ts)');
});

t.test('docs/benchmarks.md is what bench/results/ makes (npm run bench:report)', async (t) => {
  t.equal(read(path.relative(ROOT, BENCHMARKS_PAGE)), renderBenchmarks());
  t.ok(renderBenchmarks().split('\n## ').length > 5, 'results are there');
});
