// The service's secrets as every door checks them: a bearer token (the API key, the admin token) in an
// `Authorization` header or gRPC metadata, compared in constant time, and the loopback addresses that
// the repository's routes answer without an admin token.

import { timingSafeEqual } from 'node:crypto';

/** Whether `header` is `Bearer <secret>` (the scheme in any case). */
export function bearerMatches(header: string | undefined, secret: string): boolean {
  const given = /^Bearer (.+)$/i.exec(header ?? '')?.[1];
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** Whether a peer's address (as Node.js' sockets give it) is this machine's loopback. */
export function isLoopback(address: string | undefined): boolean {
  return LOOPBACK.has(address ?? '');
}
