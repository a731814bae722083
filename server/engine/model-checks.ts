// What an inference worker checks of a model's graph against its config.json when it opens it: the
// inputs and outputs named, and the sizes the graph fixes. A model that fails is skipped with the reason.

import type { Session } from '../../runtime/ort.js';
import type { WorkerModel } from './inference-protocol.js';

/** The inputs and outputs config.json names must be the session's. */
export function requireNames(m: WorkerModel, file: string, session: Session, inputs: string[], outputs: string[]): void {
  const missing = inputs.filter((n) => !session.inputNames.includes(n)).concat(outputs.filter((n) => !session.outputNames.includes(n)));
  if (missing.length > 0) {
    const list = (names: readonly string[]) => names.map((n) => `'${n}'`).join(', ');
    throw new Error(
      `model ${m.name}: ${file} has no input or output named ` +
        `${list(missing)} (config.json names them; the graph's inputs are ` +
        `${list(session.inputNames)} and its outputs ` +
        `${list(session.outputNames)})`,
    );
  }
}

/** The sizes config.json gives (channels, height and width of the input; classes of the logits) must
 *  be the graph's where the graph fixes them: a config that contradicts its graph is refused at load,
 *  not found out by the first request (a 50,000 px image_size on a 32 px graph once took the process
 *  down). A size the graph leaves symbolic is bounded by the config's schema instead. */
export function requireShapes(m: WorkerModel, file: string, session: Session): void {
  const dims = (names: readonly { name: string }[] | undefined, name: string) => {
    const meta = names?.find((v) => v.name === name) as { shape?: readonly (number | string)[] } | undefined;
    return meta?.shape ?? [];
  };
  const input = dims(session.session.inputMetadata, m.inputName);
  const want = [m.inputDims[0], m.inputDims[1], m.inputDims[2]];
  const named = ['channels', 'height', 'width'];
  if (input.length > 0 && input.length !== 4)
    throw new Error(
      `model ${m.name}: ${file} takes '${m.inputName}' of rank ${input.length}; an image input is [batch, channels, height, width]`,
    );
  input.slice(1).forEach((d, i) => {
    if (typeof d === 'number' && d > 0 && d !== want[i]) {
      throw new Error(
        `model ${m.name}: config.json gives ${named[i]} ${want[i]} ` +
          `(${i === 0 ? 'one mean and std per channel' : 'image_size'}), but ` +
          `${file} takes '${m.inputName}' of ${named[i]} ${d} ` +
          `([${input.join(', ')}])`,
      );
    }
  });
  const logits = dims(session.session.outputMetadata, m.logitsOutput);
  const classes = logits.at(-1);
  if (typeof classes === 'number' && classes > 0 && classes !== m.classes)
    throw new Error(
      `model ${m.name}: config.json names ${m.classes} labels, but ${file} ` +
        `gives ${classes} logits ('${m.logitsOutput}' [${logits.join(', ')}])`,
    );
  if (!m.rolloutOutput || !m.grid) return;
  const rollout = dims(session.session.outputMetadata, m.rolloutOutput);
  const patches = m.grid[0] * m.grid[1];
  const given = rollout.at(-1);
  if ((rollout.length > 0 && rollout.length !== 2) || (typeof given === 'number' && given > 0 && given !== patches))
    throw new Error(
      `model ${m.name}: config.json's rollout_output '${m.rolloutOutput}' must be [batch, ${patches}] ` +
        `(one value per patch of the ${m.grid[0]}x${m.grid[1]} grid), but ${file} gives [${rollout.join(', ')}]`,
    );
}
