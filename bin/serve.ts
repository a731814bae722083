// vitrine serve: the inference server (see server/config.ts for every flag and variable).

import { SERVE_USAGE, loadServeConfig } from '../server/config.js';
import { serve } from '../server/http/server.js';
import { CliError } from './cli-util.js';

export async function serveCommand(argv: string[], log: (line: string) => void): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    log(SERVE_USAGE);
    return;
  }
  let config;
  try {
    config = loadServeConfig(argv);
  } catch (err) {
    throw new CliError(`${(err as Error).message.split('\n')[0]}\n${SERVE_USAGE}`, 2);
  }
  await serve(config);
}
