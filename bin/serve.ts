// vitrine serve: the inference server (see server/config.ts for every flag and variable). Model
// folders given as arguments are served under their names (`vitrine serve runs/cats/model` serves
// 'cats'; --name gives one folder another), alone, or beside --models when it is given.

import { SERVE_USAGE, loadServeConfig } from '../server/config.js';
import { serve } from '../server/http/server.js';
import { CliError, usageError } from './cli-util.js';

export const SERVE_COMMAND_USAGE = `usage: vitrine serve [<model folder> …] [--name NAME] [flags]
  Serves the model folders given (a run's model/, an export, an import), each under its name (a run's
  model/ under the run's; --name names a single folder), or without any, the folders under --models.
${SERVE_USAGE.replace(/^usage: vitrine serve /, 'flags: ')}`;

/** The arguments that are not flags or their values (every serve flag takes a value), and --name. */
export function splitServeArgs(argv: readonly string[]): { flags: string[]; folders: string[]; name: string | null } {
  const flags: string[] = [];
  const folders: string[] = [];
  let name: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i];
    if (tok === '--name' || tok.startsWith('--name=')) {
      name = tok === '--name' ? (argv[++i] ?? '') : tok.slice('--name='.length);
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
        throw new CliError(`--name must be a model name (letters, digits, '.', '_', '-'), got '${name}'`, 2);
    } else if (tok.startsWith('-')) {
      flags.push(tok);
      if (/^--[^=]+$/.test(tok) && i + 1 < argv.length) flags.push(argv[++i]);
    } else folders.push(tok);
  }
  if (name !== null && folders.length !== 1)
    throw new CliError(`--name names one model folder; with ${folders.length} given, name each as NAME=DIR`, 2);
  return { flags, folders, name };
}

export async function serveCommand(argv: string[], log: (line: string) => void): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    log(SERVE_COMMAND_USAGE);
    return;
  }
  const { flags, folders, name } = splitServeArgs(argv);
  let config;
  try {
    config = loadServeConfig(flags);
  } catch (err) {
    throw usageError((err as Error).message, SERVE_COMMAND_USAGE);
  }
  const given = folders.map((f) => (name !== null ? `${name}=${f}` : f));
  config = { ...config, modelFolder: [...config.modelFolder, ...given] };
  try {
    await serve(config);
  } catch (err) {
    // what the folders or the models cannot give is one line, not a stack
    throw new CliError((err as Error).message.split('\n')[0]);
  }
}
