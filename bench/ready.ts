// Waiting for a server a bench started: polls GET /readyz every 100 ms.

/** Resolves once `${base}/readyz` answers 2xx; throws after `seconds`. */
export async function waitReady(base: string, seconds: number): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) return;
    } catch {
      /* not listening yet */
    }
    if (i > seconds * 10) throw new Error('the server did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
}
