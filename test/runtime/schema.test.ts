// The configs' shared vocabulary: the words for what a value must be come from the schema's own
// keywords, problems name the key they are under, and every config's defaults pass its own schema.

import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import t from 'tap';
import { ModelConfigSchema, parseModelConfig } from '../../runtime/model-config.js';
import { defaultsOf, expected, firstProblem, flagOf, oneOf, packLines, shownValue } from '../../runtime/schema.js';
import { ServeConfigSchema } from '../../server/config.js';
import { TrainConfigSchema } from '../../trainer/train/config.js';
import { ViTConfigSchema } from '../../trainer/vit/config.js';

t.test('the words come from the keywords', async (t) => {
  const cases: [unknown, string][] = [
    [Type.Integer({ minimum: 1 }), 'a positive integer'],
    [Type.Integer({ minimum: 0 }), 'an integer >= 0'],
    [Type.Integer({ minimum: 0, maximum: 30 }), 'an integer in [0, 30]'],
    [Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), 'a positive integer'],
    [Type.Integer(), 'an integer'],
    [Type.Number({ exclusiveMinimum: 0 }), 'a positive number'],
    [Type.Number({ exclusiveMinimum: 2 }), 'a number above 2'],
    [Type.Number({ minimum: 0 }), 'a number >= 0'],
    [Type.Number({ minimum: 0, exclusiveMaximum: 1 }), 'a number in [0, 1)'],
    [Type.Number({ exclusiveMinimum: 0, maximum: 1 }), 'a number in (0, 1]'],
    [Type.Number({ maximum: 5 }), 'a number <= 5'],
    [Type.Boolean(), 'true or false'],
    [Type.String({ minLength: 1 }), 'a non-empty string'],
    [oneOf(['cpu', 'cuda']), 'one of cpu, cuda'],
    [Type.Union([Type.Literal(1), Type.Literal(3)]), 'one of 1, 3'],
    [Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]), 'a positive integer or null'],
    [Type.Array(Type.Number({ exclusiveMinimum: 0 }), { minItems: 1 }), 'a non-empty array of positive numbers'],
    [Type.Array(Type.String()), 'an array of strings'],
    [Type.Array(Type.Number(), { minItems: 2, maxItems: 2 }), 'two numbers'],
    [Type.Object({ height: Type.Integer(), width: Type.Integer() }), 'an object { height, width }'],
    [Type.String({ expects: 'a file in the folder' }), 'a file in the folder'],
  ];
  for (const [schema, words] of cases) t.equal(expected(schema as never), words, words);
});

t.test('a problem names the key it is under, and what is there', async (t) => {
  const s = Type.Object(
    { a: Type.Integer({ minimum: 1 }), b: Type.Object({ c: Type.Boolean(), d: Type.Optional(Type.String()) }) },
    { additionalProperties: false },
  );
  t.equal(firstProblem(s, { a: 1, b: { c: true } }), null);
  t.same(firstProblem(s, { a: 0, b: { c: true } }), { path: 'a', expects: 'a positive integer', got: 0 });
  t.same(firstProblem(s, { a: 1, b: { c: 'yes' } }), { path: 'b.c', expects: 'true or false', got: 'yes' });
  t.same(firstProblem(s, { a: 1 }), { path: 'b', expects: 'an object { c, d }', got: undefined }, 'a missing required key');
  t.same(
    firstProblem(s, { a: 1, b: { c: true }, e: 2 }),
    { path: 'e', expects: 'not set (known keys: a, b)', got: 2 },
    'an unknown key of a closed object',
  );
  t.same(firstProblem(s, [1]), { path: '', expects: 'an object { a, b }', got: [1] }, 'not an object at all');
  t.same(
    firstProblem(Type.Array(Type.Number()), [1, 'x']),
    { path: '', expects: 'an array of numbers', got: [1, 'x'] },
    'arrays are named whole',
  );
  t.same(firstProblem(Type.Number(), Infinity)?.expects, 'a number', 'numbers are finite');
});

t.test('every config has a default for each key, and its defaults pass its schema', async (t) => {
  for (const [name, schema] of Object.entries({ ViTConfigSchema, TrainConfigSchema, ServeConfigSchema })) {
    const d = defaultsOf(schema);
    t.same(
      Object.keys(d).filter((k) => (d as Record<string, unknown>)[k] === undefined),
      [],
      `${name}: every key has a default`,
    );
    t.ok(Value.Check(schema, d), `${name}: the defaults are valid`);
  }
  const a = defaultsOf(ViTConfigSchema) as { mean: number[] };
  a.mean[0] = 9;
  t.equal((defaultsOf(ViTConfigSchema) as { mean: number[] }).mean[0], 0.5, 'each call gives fresh copies');
});

t.test('flags and usage', async (t) => {
  t.equal(flagOf('batch_size'), 'batch-size');
  t.equal(flagOf('maxDelayMs'), 'max-delay-ms');
  t.equal(shownValue(oneOf(['a', 'b'], { default: 'a' })), 'a|b');
  t.equal(shownValue(Type.Integer({ default: 3, example: 'N' })), 'N');
  t.equal(shownValue(Type.Integer({ default: 3 })), '3');
  t.same(packLines(['aaaa', 'bbbb', 'cccc'], 9), ['aaaa bbbb', 'cccc']);
});

t.test('a parsed model config passes ModelConfigSchema', async (t) => {
  const c = parseModelConfig({ id2label: { 0: 'a' } }, 'c', { size: 8, image_mean: [0], image_std: [1] });
  t.ok(Value.Check(ModelConfigSchema, c));
  t.same(c.image_size, [8, 8], "a processor's size as one number is a square");
});
