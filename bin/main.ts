// The vitrine command's dispatcher: one line per error on stderr, exit 1 (2 for usage errors).

import { CliError } from './cli-util.js';
import { closest } from '../runtime/args.js';

const USAGE = `usage: vitrine <command> [flags]
commands:
  train    train a ViT (CIFAR-10 or a folder of class folders) with checkpoints and resume
  export   write an ONNX model (logits + attention maps) and its config.json
  import   a ViT exported by torch.onnx or optimum -> a model folder with attention and relevance maps
  quantize a model folder -> one whose classification graph runs its large matrix products in int8 (faster on the CPU)
  eval     accuracy, per-class accuracy and confusion matrix of an exported model
  card     (re)write a model folder's README.md, its model card, from the folder's files
  predict  classify (and explain) files, folders and globs of images: results file, heatmaps, resume, shards
  serve    the inference server: web page, /classify, /attention/:id, /metrics
run 'vitrine <command> --help' for its flags`;

/** A command resolves with its exit status (0 when it returns nothing) or throws. */
type Command = (argv: string[], log: (line: string) => void) => Promise<number | void>;
// Loaded on use: `serve` never loads the trainer, and each command starts only what it needs.
const COMMANDS: Record<string, () => Promise<Command>> = {
  train: async () => (await import('./train.js')).trainCommand,
  export: async () => (await import('./export.js')).exportCommand,
  import: async () => (await import('./import.js')).importCommand,
  quantize: async () => (await import('./quantize.js')).quantizeCommand,
  eval: async () => (await import('./eval.js')).evalCommand,
  card: async () => (await import('./card.js')).cardCommand,
  predict: async () => (await import('./predict.js')).predictCommand,
  serve: async () => (await import('./serve.js')).serveCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const log = (line: string) => process.stdout.write(line + '\n');
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    log(USAGE);
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    const near = closest(name, Object.keys(COMMANDS));
    process.stderr.write(
      `vitrine: unknown command '${name}'${near ? ` (did you mean ${near}?)` : ''}; ` +
        `commands: ${Object.keys(COMMANDS).join(', ')} ('vitrine --help' says what each does)\n`,
    );
    return 2;
  }
  try {
    const command = await load();
    return (await command(rest, log)) ?? 0;
  } catch (err) {
    const code = err instanceof CliError ? err.exitCode : 1;
    process.stderr.write(`vitrine ${name}: ${(err as Error).message}\n`);
    return code;
  }
}
