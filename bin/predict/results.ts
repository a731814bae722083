// vitrine predict's results file: one record per input, as JSON lines or CSV, appended and flushed
// as results come (each record one write, so a killed run leaves whole records and at most one cut
// short at the end); read back to resume (keyed by path, size and mtime) and to merge shards.

import { closeSync, fdatasyncSync, openSync, promises as fs, writeSync } from 'node:fs';
import path from 'node:path';
import { writeFilesAtomic } from '../../trainer/io/atomic.js';
import { CliError } from '../cli-util.js';
import { type Shard, inputKey } from './inputs.js';

export type Format = 'jsonl' | 'csv';

export interface PredictRecord {
  path: string;
  size: number;
  mtime_ms: number;
  predictions?: { label: string; index: number; probability: number }[];
  logits?: number[];
  map?: Record<string, unknown>;
  image?: { format: string; width: number; height: number };
  timings?: Record<string, number>;
  error?: { code: string; message: string };
}

/** What resuming, merging and the summary need of a written record, and its text as written. */
export interface WrittenRecord {
  key: string;
  path: string;
  label: string | null;
  error: string | null;
  text: string;
}

/** The results file of a run, or of one shard of it. */
export function resultsFile(dir: string, format: Format, shard: Shard | null): string {
  return path.join(dir, shard && shard.count > 1 ? `predictions-${shard.index}-of-${shard.count}.${format}` : `predictions.${format}`);
}

const SHARD_FILE = /^predictions-([0-9]+)-of-([0-9]+)\.(jsonl|csv)$/;

/** The CSV columns for a run's flags. */
export function csvHeader(o: { topk: number; labels: readonly string[]; logits: boolean; maps: boolean }): string[] {
  const cols = ['path', 'size', 'mtime_ms'];
  for (let k = 1; k <= o.topk; k++) cols.push(`label_${k}`, `probability_${k}`);
  if (o.maps) cols.push('map');
  if (o.logits) cols.push(...o.labels.map((l) => `logit_${l}`));
  cols.push('error');
  return cols;
}

// A cell a spreadsheet would run as a formula (=, +, -, @, tab or CR first, not a number) gets a
// leading apostrophe, as OWASP's CSV injection advice has it: a file named =HYPERLINK(…).png is
// text there. Cells that already start with apostrophes before such a character get one more, so
// that reading the file back (formulaSafe's inverse) gives every value as it was.
const FORMULA = /^'*[=+\-@\t\r]/;
const formulaSafe = (v: string) => (FORMULA.test(v) && !(v.trim() !== '' && Number.isFinite(Number(v))) ? `'${v}` : v);
/** A cell as written, back to its value. */
export const fromCsvCell = (v: string) =>
  v.startsWith("'") && FORMULA.test(v.slice(1)) && !Number.isFinite(Number(v.slice(1))) ? v.slice(1) : v;
const csvField = (raw: string) => {
  const v = formulaSafe(raw);
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
};
/** One CSV row, quoted where a field needs it. */
export const csvLine = (fields: readonly string[]) => fields.map(csvField).join(',') + '\n';

/** One record as it is written: a JSON line, or a CSV row of `header`'s columns. */
export function formatRecord(r: PredictRecord, format: Format, header: readonly string[]): string {
  if (format === 'jsonl') return JSON.stringify(r) + '\n';
  const row: Record<string, string> = {
    path: r.path,
    size: String(r.size),
    mtime_ms: String(r.mtime_ms),
    error: r.error ? `${r.error.code}: ${r.error.message}` : '',
  };
  r.predictions?.forEach((p, k) => {
    row[`label_${k + 1}`] = p.label;
    row[`probability_${k + 1}`] = String(p.probability);
  });
  if (r.map) row.map = String(r.map.file ?? '');
  const logitCols = header.filter((c) => c.startsWith('logit_'));
  r.logits?.forEach((v, i) => (row[logitCols[i]] = String(v)));
  return csvLine(header.map((c) => row[c] ?? ''));
}

/** RFC 4180 rows with the text each was read from (quoted fields may hold commas, quotes, newlines).
 *  `complete` is false when the text ends inside a row (a write cut short). */
export function parseCsv(text: string): { rows: { fields: string[]; text: string }[]; complete: boolean } {
  const rows: { fields: string[]; text: string }[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch !== '"') field += ch;
      else if (text[i + 1] === '"') {
        field += '"';
        i++;
      } else quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      fields.push(field);
      field = '';
    } else if (ch === '\n') {
      fields.push(field.endsWith('\r') ? field.slice(0, -1) : field);
      rows.push({ fields, text: text.slice(start, i + 1) });
      fields = [];
      field = '';
      start = i + 1;
    } else field += ch;
  }
  return { rows, complete: start === text.length };
}

/** The records of a results file; a record cut short at the end is left out (`cut` says so). */
export function readRecords(
  text: string,
  format: Format,
  file: string,
  header: readonly string[] | null,
): { records: WrittenRecord[]; cut: boolean; header: string[] | null } {
  const records: WrittenRecord[] = [];
  if (format === 'jsonl') {
    const lines = text.split('\n');
    const tail = lines.pop()!; // '' after the last newline, else a line cut short
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      let r: PredictRecord;
      try {
        r = JSON.parse(line);
      } catch {
        throw new CliError(`${file}:${i + 1} is not a JSON line vitrine predict wrote; move the file away or use --overwrite`);
      }
      if (typeof r?.path !== 'string' || typeof r.size !== 'number' || typeof r.mtime_ms !== 'number')
        throw new CliError(`${file}:${i + 1} has no path, size and mtime_ms: not a results file of vitrine predict`);
      records.push({
        key: inputKey({ path: r.path, size: r.size, mtimeMs: r.mtime_ms }),
        path: r.path,
        label: r.predictions?.[0]?.label ?? null,
        error: r.error?.code ?? null,
        text: line + '\n',
      });
    });
    return { records, cut: tail !== '', header: null };
  }
  const { rows, complete } = parseCsv(text);
  if (rows.length === 0) return { records, cut: !complete, header: null };
  const found = rows[0].fields;
  if (header && found.join(',') !== header.join(','))
    throw new CliError(
      `${file} has the columns ${found.join(',')}, this run writes ` +
        `${header.join(',')}: run with the flags that wrote it (--topk, ` +
        `--logits, --maps), or --overwrite`,
    );
  const col = (name: string) => found.indexOf(name);
  const [p, s, m, l, e] = ['path', 'size', 'mtime_ms', 'label_1', 'error'].map(col);
  if (p < 0 || s < 0 || m < 0) throw new CliError(`${file} has no path, size and mtime_ms columns: not a results file of vitrine predict`);
  for (const row of rows.slice(1)) {
    const f = row.fields.map(fromCsvCell);
    const error = e >= 0 && f[e] ? f[e].split(':')[0] : null;
    records.push({
      key: inputKey({ path: f[p], size: Number(f[s]), mtimeMs: Number(f[m]) }),
      path: f[p],
      label: l >= 0 && f[l] ? f[l] : null,
      error,
      text: row.text,
    });
  }
  return { records, cut: !complete, header: found };
}

/** Appends whole records to a file and flushes them to the disk every few seconds and at the end. */
export class Appender {
  private readonly fd: number;
  private synced = Date.now();

  constructor(file: string) {
    this.fd = openSync(file, 'a');
  }

  write(text: string): void {
    const bytes = Buffer.from(text);
    for (let at = 0; at < bytes.length; ) at += writeSync(this.fd, bytes, at);
    if (Date.now() - this.synced > 5000) this.sync();
  }

  sync(): void {
    fdatasyncSync(this.fd);
    this.synced = Date.now();
  }

  close(): void {
    this.sync();
    closeSync(this.fd);
  }
}

/** Writes `text` in place of `file`, atomically. */
export async function replaceFile(file: string, text: string | Uint8Array): Promise<void> {
  await writeFilesAtomic([[file, text]]);
}

/** Joins the shard files of `dir` into one results file, sorted by path; refuses a missing shard, a
 *  mix of shard counts or formats, and an input in two shards. */
export async function mergeShards(dir: string): Promise<{ file: string; shards: number; records: WrittenRecord[] }> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    throw new CliError(`cannot read ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const shards = names.map((n) => SHARD_FILE.exec(n)).filter((m): m is RegExpExecArray => m !== null);
  if (shards.length === 0)
    throw new CliError(`${dir} holds no shard files (predictions-<i>-of-<n>.jsonl or .csv, written with --shard or --shards)`);
  const counts = new Set(shards.map((m) => m[2]));
  const formats = new Set(shards.map((m) => m[3]));
  if (counts.size > 1 || formats.size > 1)
    throw new CliError(`${dir} mixes shard files of several runs (${shards.map((m) => m[0]).join(', ')}): keep one run's`);
  const count = Number(shards[0][2]);
  const format = shards[0][3] as Format;
  const have = new Set(shards.map((m) => Number(m[1])));
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !have.has(i));
  if (missing.length)
    throw new CliError(
      `shard${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ` +
        `${count} missing in ${dir}: run them (--shard i/${count}) before ` +
        `merging`,
    );
  const all: WrittenRecord[] = [];
  let header: string[] | null = null;
  for (let i = 1; i <= count; i++) {
    const file = path.join(dir, `predictions-${i}-of-${count}.${format}`);
    const read = readRecords(await fs.readFile(file, 'utf8'), format, file, header);
    if (read.cut) throw new CliError(`${file} ends with a record cut short: its run did not finish; run that shard again with --resume`);
    header ??= read.header;
    all.push(...read.records);
  }
  const seen = new Set<string>();
  for (const r of all) {
    if (seen.has(r.path)) throw new CliError(`${r.path} is in more than one shard: were the shards run over the same inputs?`);
    seen.add(r.path);
  }
  all.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const out = path.join(dir, `predictions.${format}`);
  await replaceFile(out, (header ? csvLine(header) : '') + all.map((r) => r.text).join(''));
  return { file: out, shards: count, records: all };
}
