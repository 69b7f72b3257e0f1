import { isUtf8 } from "node:buffer";
import { createReadStream } from "node:fs";
import { open, readFile, stat } from "node:fs/promises";
import { gunzipSync, createGunzip } from "node:zlib";
import { DatasetError } from "../errors/index.js";
import { DEFAULT_MAX_LINE_BYTES, readLines } from "./lines.js";
import { type BadRowOptions, type DataReport, ReportBuilder } from "./report.js";
import type { RowSource, SourcedRow } from "./types.js";

/** File layouts {@link loadDataset} reads. `.gz` variants are gzip-compressed. */
export type DatasetFileFormat = "json" | "jsonl" | "json.gz" | "jsonl.gz";

/** Options of {@link loadDataset} and {@link streamJsonl}. */
export interface LoadDatasetOptions extends BadRowOptions {
  /**
   * File layout. Default: gzip is detected from the magic bytes; `.jsonl`/`.ndjson` are JSON Lines;
   * any other file is a JSON array if its first non-blank character is `[` (or `{` with `field`), otherwise JSON Lines.
   */
  format?: DatasetFileFormat;
  /** For a JSON file holding an object, the key of the row array (as `datasets`' `field=`). */
  field?: string;
  /** Stop after this many rows (useful for smoke tests). */
  limit?: number;
  /**
   * JSON Lines: the longest line accepted, in bytes (default 16 MiB, {@link DEFAULT_MAX_LINE_BYTES}). A longer
   * line stops the load with a {@link DatasetError} naming file and line, before it is read whole.
   */
  maxLineBytes?: number;
}

/** The largest JSON (not JSON Lines) file read as one document: V8 strings cannot hold much more. */
export const MAX_JSON_DOCUMENT_BYTES = 500 * 1024 * 1024;

/** A loaded dataset: the rows with their provenance, the resolved layout and the load report. */
export interface LoadedDataset {
  /** The path that was read. */
  file: string;
  /** The layout that was used. */
  format: DatasetFileFormat;
  /** Rows in file order. */
  rows: SourcedRow[];
  /** Counts (rows that are not JSON objects are dropped here under `onBadRow: "skip"`). */
  report: DataReport;
}

/** V8's JSON messages can quote the offending text; keep only the position so row contents never reach logs. */
function jsonErrorMessage(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const pos = /at position \d+( \(line \d+ column \d+\))?/.exec(msg);
  return pos ? `invalid JSON (${pos[0]})` : "invalid JSON";
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function readError(path: string, err: unknown, lastRow?: number): DatasetError {
  const reason = err instanceof Error ? err.message : String(err);
  const after = lastRow !== undefined && lastRow > 0 ? ` (after row ${lastRow})` : "";
  return new DatasetError(`cannot read${after}: ${reason}`, { file: path }, { cause: err });
}

async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(2);
    const { bytesRead } = await fh.read(buf, 0, 2, 0);
    return bytesRead === 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

async function resolveFormat(path: string, field: string | undefined): Promise<DatasetFileFormat> {
  const gz = await isGzip(path);
  const name = path.toLowerCase().replace(/\.gz$/, "");
  if (name.endsWith(".jsonl") || name.endsWith(".ndjson")) return gz ? "jsonl.gz" : "jsonl";
  // Sniff the first non-blank character.
  const stream = createReadStream(path, { start: 0, end: 64 * 1024 - 1 });
  const source = gz ? stream.pipe(createGunzip()) : stream;
  let first = "";
  try {
    for await (const chunk of source) {
      const m = /\S/.exec(String(chunk));
      if (m) {
        first = m[0];
        break;
      }
    }
  } catch {
    // A truncated gzip prefix can fail to inflate; the first chunk is all we need.
  } finally {
    stream.destroy();
  }
  // `[` is a JSON array; `{` is one object holding the rows when `field` is given, otherwise JSON Lines.
  const isJson = first === "[" || (first === "{" && field !== undefined);
  if (isJson) return gz ? "json.gz" : "json";
  return gz ? "jsonl.gz" : "jsonl";
}

/** Options of {@link streamJsonl}. */
export interface StreamJsonlOptions {
  /** Gunzip the file; detected from the magic bytes when absent. */
  gzip?: boolean;
  /** What to do with a line that is valid JSON but not an object. Default `error`. */
  onBadRow?: "error" | "skip";
  /** Told about every line dropped under `onBadRow: "skip"`. */
  onDrop?: (source: RowSource, reason: string) => void;
  /** Told about every line that is not valid UTF-8 (its bad bytes were read as U+FFFD). */
  onInvalidUtf8?: (source: RowSource) => void;
  /** Longest line accepted, in bytes. Default {@link DEFAULT_MAX_LINE_BYTES}. */
  maxLineBytes?: number;
}

/**
 * Stream a JSON Lines file (optionally gzip-compressed) row by row without reading it whole.
 * Blank lines are skipped; row numbers are 1-based line numbers. A line longer than `maxLineBytes` or
 * not valid JSON always throws a {@link DatasetError} naming file and row; a line that is valid JSON but
 * not an object follows `onBadRow`; a line that is not valid UTF-8 is reported to `onInvalidUtf8`.
 * @param path File to read.
 * @param options Decompression, bad-row policy, callbacks and the line cap.
 */
export async function* streamJsonl(path: string, options: StreamJsonlOptions = {}): AsyncGenerator<SourcedRow> {
  const gz = options.gzip ?? (await isGzip(path));
  let lineNo = 0;
  try {
    for await (const fileLine of readLines(path, {
      gzip: gz,
      maxLineBytes: options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
    })) {
      lineNo = fileLine.lineNo;
      const line = fileLine.text;
      if (line.trim() === "") continue;
      if (!fileLine.validUtf8) options.onInvalidUtf8?.({ file: path, row: lineNo });
      const source: RowSource = { file: path, row: lineNo };
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        throw new DatasetError(jsonErrorMessage(err), { file: path, row: lineNo }, { cause: err });
      }
      if (!isPlainObject(value)) {
        if ((options.onBadRow ?? "error") === "error") {
          throw new DatasetError("row is not a JSON object", { file: path, row: lineNo });
        }
        options.onDrop?.(source, "not a JSON object");
        continue;
      }
      yield { data: value, source };
    }
  } catch (err) {
    if (err instanceof DatasetError) throw err;
    throw readError(path, err, lineNo);
  }
}

/** 1-based numbers of the lines of `bytes` that are not valid UTF-8. */
function invalidUtf8Lines(bytes: Buffer): number[] {
  if (isUtf8(bytes)) return [];
  const out: number[] = [];
  for (let start = 0, line = 1; start <= bytes.length; line++) {
    const nl = bytes.indexOf(0x0a, start);
    const end = nl < 0 ? bytes.length : nl;
    if (!isUtf8(bytes.subarray(start, end))) out.push(line);
    start = end + 1;
  }
  return out;
}

/** Reads a whole JSON document, refusing files too large for one string; notes lines that are not UTF-8. */
async function readJsonDocument(path: string, gz: boolean): Promise<{ text: string; invalidUtf8: number[] }> {
  const size = (await stat(path)).size;
  if (!gz && size > MAX_JSON_DOCUMENT_BYTES) throw new RangeError(`${size} bytes`);
  const buf = await readFile(path);
  // maxOutputLength makes gunzip stop (RangeError) instead of inflating past what a string can hold
  const bytes = gz ? gunzipSync(buf, { maxOutputLength: MAX_JSON_DOCUMENT_BYTES }) : buf;
  return { text: bytes.toString("utf8"), invalidUtf8: invalidUtf8Lines(bytes) };
}

/**
 * Load a dataset file: a JSON array, JSON Lines, or either gzip-compressed. JSON Lines are streamed line by
 * line. Every row keeps its provenance ({@link RowSource}) so later stages can name it in errors.
 * @param path File to read.
 * @param options Layout, row limit and bad-row policy.
 * @throws DatasetError on unreadable files, invalid JSON (naming file and row for JSONL) and empty datasets.
 */
export async function loadDataset(path: string, options: LoadDatasetOptions = {}): Promise<LoadedDataset> {
  let format: DatasetFileFormat;
  try {
    format = options.format ?? (await resolveFormat(path, options.field));
  } catch (err) {
    throw readError(path, err);
  }
  const builder = new ReportBuilder("load");
  const rows: SourcedRow[] = [];
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const invalidUtf8: number[] = [];
  if (format === "jsonl" || format === "jsonl.gz") {
    const stream = streamJsonl(path, {
      gzip: format === "jsonl.gz",
      onBadRow: options.onBadRow ?? "error",
      onDrop: (source, reason) => {
        builder.report.rowsIn++;
        builder.drop(source, reason);
      },
      onInvalidUtf8: (source) => invalidUtf8.push(source.row),
      ...(options.maxLineBytes !== undefined ? { maxLineBytes: options.maxLineBytes } : {}),
    });
    for await (const row of stream) {
      builder.report.rowsIn++;
      rows.push(row);
      if (rows.length >= limit) break;
    }
  } else {
    let text: string;
    try {
      const doc = await readJsonDocument(path, format === "json.gz");
      text = doc.text;
      invalidUtf8.push(...doc.invalidUtf8);
    } catch (err) {
      if (err instanceof RangeError) {
        throw new DatasetError(
          `too large to read as one JSON document (over ${MAX_JSON_DOCUMENT_BYTES / (1024 * 1024)} MB): use JSON Lines (one row per line)`,
          { file: path },
          { cause: err },
        );
      }
      throw readError(path, err);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new DatasetError(jsonErrorMessage(err), { file: path }, { cause: err });
    }
    if (options.field !== undefined) {
      if (!isPlainObject(value) || !Array.isArray(value[options.field])) {
        throw new DatasetError("expected an object holding an array of rows", { file: path, field: options.field });
      }
      value = value[options.field];
    }
    if (!Array.isArray(value)) {
      throw new DatasetError("expected a JSON array of row objects (or pass `field`, or use JSON Lines)", {
        file: path,
      });
    }
    for (let i = 0; i < value.length && rows.length < limit; i++) {
      const source: RowSource = { file: path, row: i + 1 };
      builder.report.rowsIn++;
      const item: unknown = value[i];
      if (!isPlainObject(item)) {
        builder.bad(options.onBadRow, source, "not a JSON object", "row is not a JSON object");
        continue;
      }
      rows.push({ data: item, source });
    }
  }
  if (rows.length === 0) {
    throw new DatasetError(
      builder.report.rowsIn === 0 ? "dataset is empty (no rows)" : "dataset has no usable rows (all were dropped)",
      { file: path },
    );
  }
  builder.report.rowsOut = rows.length;
  if (invalidUtf8.length > 0) {
    builder.report.invalidUtf8 = { lines: invalidUtf8.length, first: invalidUtf8[0]! };
    (options.warn ?? console.warn)(
      `${path}: ${invalidUtf8.length} line(s) are not valid UTF-8 (first: line ${invalidUtf8[0]}); ` +
        "their invalid bytes were read as U+FFFD",
    );
  }
  return { file: path, format, rows, report: builder.finish(options.warn) };
}

/** Wrap in-memory objects as {@link SourcedRow}s (row numbers 1-based; optional file name for messages). */
export function rowsFromObjects(objects: readonly Record<string, unknown>[], file?: string): SourcedRow[] {
  return objects.map((data, i) => ({ data, source: file === undefined ? { row: i + 1 } : { file, row: i + 1 } }));
}
