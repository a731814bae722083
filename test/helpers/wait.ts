// Waiting for a condition in tests: polled, named, and a clear failure when it never holds.

/** Resolves when `check` holds, polling every 20 ms; rejects after `ms`, naming what was awaited. */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The base URL a server child process says it serves on ("serving … on http://…"), and its output so far. */
export function servingUrl(
  child: import('node:child_process').ChildProcess,
  what = 'the server',
  ms = 60_000,
): { url: Promise<string>; log: () => string } {
  let log = '';
  const url = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${log}`)), ms);
    const onData = (d: Buffer) => {
      log += d;
      const m = /serving .* on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  });
  return { url, log: () => log };
}
