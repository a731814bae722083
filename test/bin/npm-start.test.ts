// `npm start` (the README's quick start) stops with its signal: SIGTERM or SIGINT sent to npm reaches
// the server, which drains and exits, and nothing is left answering (npm's script execs node, so the
// signal npm forwards to its child reaches the server rather than a shell).

import { spawn } from 'node:child_process';
import t from 'tap';
import { ROOT } from '../helpers/cli.js';
import { testModels } from '../helpers/server.js';
import { servingUrl } from '../helpers/wait.js';

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal} to npm start drains and stops the server`, async (t) => {
    const models = await testModels();
    const npm = spawn('npm', ['start', '--silent', '--', '--models', models, '--port', '0', '--host', '127.0.0.1', '--workers', '1'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<[number | null, string | null]>((r) => npm.on('exit', (code, sig) => r([code, sig])));
    const serving = servingUrl(npm, 'npm start');
    const base = await serving.url;
    t.equal((await fetch(`${base}/healthz`)).status, 200, 'serving through npm start');
    const pid = Number(/"pid":(\d+)/.exec(serving.log())?.[1]);
    t.teardown(() => {
      // when the test fails, leave nothing running (an orphaned server holds the pipes open)
      npm.stdout.destroy();
      npm.stderr.destroy();
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    });
    t.ok(pid > 0 && pid !== npm.pid, `the server is npm's child (pid ${pid})`);
    npm.kill(signal);
    t.same(await exited, [0, null], 'npm exits 0 once the server has');
    t.match(serving.log(), new RegExp(`${signal}: draining and shutting down`));
    await t.rejects(fetch(`${base}/healthz`), 'nothing answers any more');
    t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'the server process is gone');
  });
}
