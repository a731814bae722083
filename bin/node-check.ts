// The Node.js versions vitrine runs on, checked before anything else loads: an older one would fail
// somewhere inside with a message that says nothing of the cause. Nothing is imported here.

export const SUPPORTED_NODE = [22, 24] as const;

/** One line saying what to do when `version` (process.versions.node) is too old; null when it will do. */
export function nodeVersionProblem(version: string): string | null {
  const major = Number(version.split('.')[0]);
  if (major >= SUPPORTED_NODE[0]) return null;
  return (
    `vitrine: Node.js ${SUPPORTED_NODE.join(' or ')} is needed (24 recommended); this is v${version}, ` +
    'past its end of life: install 24 from https://nodejs.org or with a version manager (nvm install 24)'
  );
}
