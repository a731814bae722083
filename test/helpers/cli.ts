import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { Test } from 'tap';
import { servingUrl } from './wait.js';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The built command, as users and the images run it (`npm test` builds it first). */
export const BUILT_CLI = path.join(ROOT, 'dist', 'bin', 'vitrine.js');

/** Runs the vitrine command in a child process: from source, or the built one with `built`. */
export function runCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; built?: boolean; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const entry = opts.built ? [BUILT_CLI] : ['--import', 'tsx', path.join(ROOT, 'bin', 'vitrine.ts')];
    const child = spawn(process.execPath, [...entry, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The error is one line, the last of the output (progress and warnings may precede it). */
export function assertOneLineError(t: Test, stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n');
  const errors = lines.filter((l) => l.startsWith('vitrine '));
  t.equal(errors.length, 1, `one error line: ${stderr.trim()}`);
  t.equal(errors[0], lines.at(-1), 'the error is the last line');
  t.match(errors[0], pattern);
}

export interface Served {
  child: ChildProcess;
  port: number;
  base: string;
  exited: Promise<number | null>;
}

/** `vitrine serve` (built) on a port the system gives it (--port 0): the port read from its start
 *  line, never one found free beforehand and released for it (another process may take it between). */
export async function serveOnFreePort(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<Served> {
  const child = spawn(process.execPath, [BUILT_CLI, 'serve', '--port', '0', '--host', '127.0.0.1', '--log-level', 'info', ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const { url, log } = servingUrl(child, 'vitrine serve', opts.timeoutMs ?? 120_000);
  const base = await Promise.race([
    url,
    exited.then((code): never => {
      throw new Error(`vitrine serve exited with ${code} before listening: ${log()}`);
    }),
  ]);
  return { child, port: Number(new URL(base).port), base, exited };
}
