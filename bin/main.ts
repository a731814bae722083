// The vitrine command's dispatcher: one line per error on stderr, exit 1 (2 for usage errors).

import { CliError } from './cli-util.js';
import { evalCommand } from './eval.js';
import { exportCommand } from './export.js';
import { serveCommand } from './serve.js';
import { trainCommand } from './train.js';

const USAGE = `usage: vitrine <command> [flags]
commands:
  train    train a ViT (CIFAR-10 or a folder of class folders) with checkpoints and resume
  export   write an ONNX model (logits + attention maps) and its config.json
  eval     accuracy, per-class accuracy and confusion matrix of an exported model
  serve    the inference server: web page, /classify, /attention/:id, /metrics
run 'vitrine <command> --help' for its flags`;

type Command = (argv: string[], log: (line: string) => void) => Promise<void>;
const COMMANDS: Record<string, Command> = {
  train: trainCommand,
  export: exportCommand,
  eval: evalCommand,
  serve: serveCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const log = (line: string) => process.stdout.write(line + '\n');
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    log(USAGE);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`vitrine: unknown command '${name}'\n${USAGE}\n`);
    return 2;
  }
  try {
    await command(rest, log);
    return 0;
  } catch (err) {
    const code = err instanceof CliError ? err.exitCode : 1;
    process.stderr.write(`vitrine ${name}: ${(err as Error).message}\n`);
    return code;
  }
}
