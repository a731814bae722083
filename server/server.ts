// Runs the service: listens (0.0.0.0:8080 by default), and on SIGTERM or SIGINT stops accepting,
// answers what is in flight, and exits 0.

import { buildApp } from './app.js';
import { ServeConfig } from './config.js';

export async function serve(config: ServeConfig): Promise<void> {
  const app = await buildApp(config);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info(`${signal}: draining and shutting down`);
    const force = setTimeout(() => {
      app.log.error('shutdown took longer than 30 s; exiting');
      process.exit(1);
    }, 30_000);
    force.unref();
    try {
      await app.close();
      process.exitCode = 0;
    } catch (err) {
      app.log.error({ err }, 'error while closing');
      process.exitCode = 1;
    }
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  const address = await app.listen({ port: config.port, host: config.host });
  app.log.info(`vitrine serving ${app.vitrine.models.map((m) => m.name).join(', ')} on ${address} (${config.workers} workers, providers: ${JSON.stringify(app.vitrine.pool.providers)})`);
}
