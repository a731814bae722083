// Waiting for a condition in tests: polled, named, and a clear failure when it never holds.

/** Resolves when `check` holds, polling every 20 ms; rejects after `ms`, naming what was awaited. */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
