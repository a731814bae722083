// What the four configs (a model folder's, the ViT's, a training run's, the server's) share: each is a
// TypeBox schema, and this module reads off it what every config needs besides its type (`Static`):
// the defaults, the words for what a value must be ("a positive integer", "one of cpu, cuda, auto",
// "a number in [0, 1)"), the first problem of a value, and the names of its flags. One vocabulary, so
// that a bad value reads the same in a recipe, a flag, an environment variable and a config.json.

import { type TObject, type TSchema, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/** A schema with the annotations the configs use: `expects` (words that override the derived ones),
 *  `example` (what usage text shows for the value) and `env` (the server's extra variable names). */
type Annotated = TSchema & { expects?: string; example?: string; env?: string[] };

const WORDS = ['no', 'one', 'two', 'three', 'four'];

/** The schema's values in words, as they follow "must be". */
export function expected(schema: TSchema): string {
  const s = schema as Annotated;
  if (typeof s.expects === 'string') return s.expects;
  if (s.anyOf) {
    const literals = literalsOf(s);
    if (literals) return `one of ${literals.join(', ')}`;
    return (s.anyOf as TSchema[]).map(expected).join(' or ');
  }
  switch (s.type) {
    case 'integer':
    case 'number':
      return numberWords(s);
    case 'boolean':
      return 'true or false';
    case 'string':
      return s.minLength ? 'a non-empty string' : 'a string';
    case 'null':
      return 'null';
    case 'array': {
      if (Array.isArray(s.items)) return `[${(s.items as TSchema[]).map(expected).join(', ')}]`; // a tuple
      const items = plural(expected(s.items as TSchema));
      if (s.minItems !== undefined && s.minItems === s.maxItems && s.minItems < WORDS.length) return `${WORDS[s.minItems]} ${items}`;
      return `${s.minItems ? 'a non-empty array' : 'an array'} of ${items}`;
    }
    case 'object': {
      const keys = Object.keys(s.properties ?? {});
      return keys.length > 0 ? `an object { ${keys.join(', ')} }` : 'an object';
    }
    default:
      return 'valid';
  }
}

/** The literals of a union of literals (an enumeration), else null. */
export function literalsOf(schema: TSchema): (string | number | boolean)[] | null {
  const any = (schema as Annotated).anyOf as TSchema[] | undefined;
  return any?.every((v) => 'const' in v) ? any.map((v) => v.const) : null;
}

const finiteBound = (b: unknown): b is number => typeof b === 'number' && Math.abs(b) < Number.MAX_SAFE_INTEGER;

function numberWords(s: Annotated): string {
  const noun = s.type === 'integer' ? 'integer' : 'number';
  const lo = finiteBound(s.minimum) ? s.minimum : finiteBound(s.exclusiveMinimum) ? s.exclusiveMinimum : undefined;
  const hi = finiteBound(s.maximum) ? s.maximum : finiteBound(s.exclusiveMaximum) ? s.exclusiveMaximum : undefined;
  const loOpen = lo !== undefined && lo === s.exclusiveMinimum;
  if (hi === undefined) {
    if (lo === undefined) return `a${noun === 'integer' ? 'n' : ''} ${noun}`;
    if ((noun === 'integer' && lo === 1 && !loOpen) || (lo === 0 && loOpen)) return `a positive ${noun}`;
    return loOpen ? `a ${noun} above ${lo}` : `a${noun === 'integer' ? 'n' : ''} ${noun} >= ${lo}`;
  }
  const hiOpen = hi === s.exclusiveMaximum;
  if (lo === undefined) return hiOpen ? `a ${noun} below ${hi}` : `a${noun === 'integer' ? 'n' : ''} ${noun} <= ${hi}`;
  return `a${noun === 'integer' ? 'n' : ''} ${noun} in ${loOpen ? '(' : '['}${lo}, ${hi}${hiOpen ? ')' : ']'}`;
}

/** "a positive number" -> "positive numbers": the words for one value made the words for several. */
function plural(one: string): string {
  return one.replace(/^an? /, '').replace(/\b(number|integer|string|object)\b/, '$1s');
}

export interface Problem {
  /** Where in the value: '' for the value itself, else the keys down to it ('relevance.file'). */
  path: string;
  /** What belongs there, in words. */
  expects: string;
  /** What is there (undefined when missing). */
  got: unknown;
}

/**
 * The first problem of a value against a schema, or null. Objects are followed into their keys (a
 * missing key, an unknown key of a closed object, a bad value), so that the problem names the key;
 * anything else is named whole, so an array reads "an array of positive numbers", not its third item.
 */
export function firstProblem(schema: TSchema, value: unknown, path = ''): Problem | null {
  if (Value.Check(schema, value)) return null;
  const s = schema as Annotated;
  const open = typeof value === 'object' && value !== null && !Array.isArray(value);
  if (s.type === 'object' && s.properties && open && s.expects === undefined) {
    const obj = value as Record<string, unknown>;
    const at = (k: string) => (path ? `${path}.${k}` : k);
    for (const [k, sub] of Object.entries(s.properties as Record<string, TSchema>)) {
      const required = (s.required as string[] | undefined)?.includes(k);
      if (!(k in obj) || obj[k] === undefined) {
        if (required) return { path: at(k), expects: expected(sub), got: undefined };
        continue;
      }
      const p = firstProblem(sub, obj[k], at(k));
      if (p) return p;
    }
    if (s.additionalProperties === false) {
      const extra = Object.keys(obj).find((k) => !(k in s.properties));
      if (extra !== undefined)
        return { path: at(extra), expects: `not set (known keys: ${Object.keys(s.properties).join(', ')})`, got: obj[extra] };
    }
  }
  return { path, expects: expected(schema), got: value };
}

/** A config's defaults, each a fresh copy. */
export function defaultsOf<T extends TObject>(schema: T): Record<keyof T['properties'], unknown> {
  return Object.fromEntries(Object.entries(schema.properties).map(([k, s]) => [k, structuredClone((s as TSchema).default)])) as Record<
    keyof T['properties'],
    unknown
  >;
}

/** A key's command-line flag: snake_case and camelCase both become --kebab-case. */
export const flagOf = (key: string) => key.replace(/_/g, '-').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** What usage text shows after a key's flag: its example, its values, or its default. */
export function shownValue(schema: TSchema): string {
  const s = schema as Annotated;
  return s.example ?? literalsOf(s)?.join('|') ?? String(s.default);
}

/** Usage entries packed a few to a line. */
export function packLines(entries: string[], width = 100, gap = ' '): string[] {
  return entries.reduce<string[]>((lines, f) => {
    if (lines.length > 0 && lines[lines.length - 1].length + gap.length + f.length <= width) lines[lines.length - 1] += `${gap}${f}`;
    else lines.push(f);
    return lines;
  }, []);
}

/** A union of string literals: one of `values`. */
export const oneOf = <T extends string>(values: readonly T[], options: Record<string, unknown> = {}) =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    options,
  );
