/**
 * JSON files in and out: typed errors that name the file, and atomic writes in the layout
 * transformers uses (`json.dumps(indent=2, sort_keys=True) + "\n"`).
 * @module
 */
import { readFile } from "node:fs/promises";
import { CheckpointError, ConfigError } from "@prefkit/core";
import { writeFileAtomically } from "./temporary.js";

/** Which error class {@link readJsonFile} throws: config files vs checkpoint files (e.g. a shard index). */
export type JsonFileKind = "config" | "checkpoint";

function errorFor(kind: JsonFileKind, message: string, file: string, cause?: unknown): Error {
  const Ctor = kind === "config" ? ConfigError : CheckpointError;
  return new Ctor(message, { file }, cause === undefined ? undefined : { cause });
}

/**
 * Read and parse a JSON file.
 * @param path - the file to read.
 * @param kind - `"config"` (default) throws {@link ConfigError}, `"checkpoint"` throws {@link CheckpointError}.
 * @returns the parsed value, cast to `T` (the caller validates its shape).
 * @throws ConfigError or CheckpointError naming the file if it cannot be read or is not valid JSON.
 */
export async function readJsonFile<T = unknown>(path: string, kind: JsonFileKind = "config"): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw errorFor(kind, `cannot read: ${e instanceof Error ? e.message : String(e)}`, path, e);
  }
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as T;
  } catch (e) {
    throw errorFor(kind, `not valid JSON (${e instanceof Error ? e.message : String(e)})`, path, e);
  }
}

/** Options for {@link stringifyJson} and {@link writeJsonAtomic}. */
export interface JsonWriteOptions {
  /** Sort object keys recursively, like Python's `sort_keys=True`. Default `true`. */
  sortKeys?: boolean;
  /** Indentation in spaces; 0 writes one compact line. Default `2`. */
  indent?: number;
  /**
   * Dotted paths of fields Python holds as `float` (`rope_theta`, `rope_scaling.factor`; an array's path covers
   * its items): an integral value there is written `8.0`, as Python's `json` writes a float.
   */
  floatFields?: readonly string[];
}

/**
 * A float as Python's `repr` (and so `json.dumps`) writes it: the shortest digits that round-trip, positional
 * for exponents -4 to 15 with at least one decimal (`10000.0`, `0.0001`), scientific otherwise with a
 * two-digit exponent (`1e-06`, `1e+16`).
 * @param x - any number.
 * @returns the text, e.g. `8.0`, `1e-05`, `NaN`.
 */
export function pythonFloat(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "Infinity" : "-Infinity";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  // toExponential() without digits gives the shortest mantissa that round-trips, as Python's repr does.
  const [mantissa, expText] = x.toExponential().split("e") as [string, string];
  const exp = Number(expText);
  const sign = x < 0 ? "-" : "";
  const digits = mantissa.replace("-", "").replace(".", "");
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  return `${sign}${digits.slice(0, exp + 1).padEnd(exp + 1, "0")}.${digits.slice(exp + 1) || "0"}`;
}

/** A string as Python's `json.dumps` writes it (`ensure_ascii`: everything past printable ASCII as `\uXXXX`). */
function pythonString(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

interface Writer {
  sortKeys: boolean;
  indent: number;
  floats: ReadonlySet<string>;
}

function writeValue(value: unknown, path: string, w: Writer, depth: number): string | undefined {
  if (value === null) return "null";
  if (typeof value === "number") {
    if (Number.isInteger(value) && !w.floats.has(path)) return String(value);
    // JSON has no NaN or Infinity: null, as JSON.stringify writes them
    return Number.isFinite(value) ? pythonFloat(value) : "null";
  }
  if (typeof value === "boolean") return String(value);
  if (typeof value === "string") return pythonString(value);
  if (typeof value !== "object") return undefined; // left out, as JSON.stringify leaves out functions and undefined
  const toJSON = (value as { toJSON?: () => unknown }).toJSON;
  if (typeof toJSON === "function") return writeValue(toJSON.call(value), path, w, depth);
  const inner = w.indent > 0 ? `\n${" ".repeat(w.indent * (depth + 1))}` : "";
  const outer = w.indent > 0 ? `\n${" ".repeat(w.indent * depth)}` : "";
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    const items = value.map((v) => writeValue(v, path, w, depth + 1) ?? "null");
    return `[${inner}${items.join(`,${inner}`)}${outer}]`;
  }
  const keys = Object.keys(value);
  if (w.sortKeys) keys.sort();
  const items: string[] = [];
  for (const k of keys) {
    const text = writeValue((value as Record<string, unknown>)[k], path === "" ? k : `${path}.${k}`, w, depth + 1);
    if (text !== undefined) items.push(`${pythonString(k)}${w.indent > 0 ? ": " : ":"}${text}`);
  }
  return items.length === 0 ? "{}" : `{${inner}${items.join(`,${inner}`)}${outer}}`;
}

/**
 * Serialize a value as transformers writes its JSON files (`json.dumps(indent=2, sort_keys=True) + "\n"`):
 * 2-space indent, keys sorted, non-ASCII escaped, a trailing newline, and numbers as Python writes them:
 * integers as they are, other numbers in Python's `repr` form (`1e-05`, `0.02`), and integral values of
 * `floatFields` with a decimal point (`10000.0`, `8.0`), which transformers' config checks expect.
 * @param value - a JSON-serializable value.
 * @param options - sorting, indentation and float fields.
 * @returns the JSON text ending in `"\n"`.
 */
export function stringifyJson(value: unknown, options: JsonWriteOptions = {}): string {
  const w: Writer = {
    sortKeys: options.sortKeys ?? true,
    indent: options.indent ?? 2,
    floats: new Set(options.floatFields ?? []),
  };
  return `${writeValue(value, "", w, 0) ?? "null"}\n`;
}

/**
 * Write JSON atomically: into a temporary file next to `path`, flushed, then renamed over `path`.
 * @param path - destination file.
 * @param value - a JSON-serializable value.
 * @param options - sorting, indentation and float fields (default: sorted keys, indent 2, as transformers).
 * @throws ConfigError naming the file if it cannot be written.
 */
export async function writeJsonAtomic(path: string, value: unknown, options: JsonWriteOptions = {}): Promise<void> {
  const text = stringifyJson(value, options);
  try {
    await writeFileAtomically(path, (fh) => fh.writeFile(text, "utf8"));
  } catch (e) {
    throw new ConfigError(`cannot write: ${e instanceof Error ? e.message : String(e)}`, { file: path }, { cause: e });
  }
}
