/**
 * JSON files in and out: typed errors that name the file, and atomic writes in the layout
 * transformers uses (`json.dumps(indent=2, sort_keys=True) + "\n"`).
 * @module
 */
import { open, readFile, rename, rm } from "node:fs/promises";
import { CheckpointError, ConfigError } from "@prefkit/core";
import { temporarySibling } from "./temporary.js";

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
  /** Indentation in spaces. Default `2`. */
  indent?: number;
}

function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (typeof value === "object" && value !== null && !ArrayBuffer.isView(value)) {
    // toJSON-capable objects (e.g. Date) serialize themselves.
    if (typeof (value as { toJSON?: unknown }).toJSON === "function") return value;
    const keys = Object.keys(value).sort();
    const out: Record<string, unknown> = {};
    for (const k of keys) {
      Object.defineProperty(out, k, {
        value: sortKeysDeep((value as Record<string, unknown>)[k]),
        enumerable: true,
        configurable: true,
        writable: true,
      });
    }
    return out;
  }
  return value;
}

/**
 * Serialize a value as transformers writes config files: 2-space indent, keys sorted, trailing newline.
 * Numbers use JavaScript's shortest form (`1e-05` is written `0.00001`, `10000.0` as `10000`);
 * Python's `json` reads both the same.
 * @param value - a JSON-serializable value.
 * @param options - sorting and indentation.
 * @returns the JSON text ending in `"\n"`.
 */
export function stringifyJson(value: unknown, options: JsonWriteOptions = {}): string {
  const { sortKeys = true, indent = 2 } = options;
  return JSON.stringify(sortKeys ? sortKeysDeep(value) : value, null, indent) + "\n";
}

/**
 * Write JSON atomically: into a temporary file next to `path`, flushed, then renamed over `path`.
 * @param path - destination file.
 * @param value - a JSON-serializable value.
 * @param options - sorting and indentation (default: sorted keys, indent 2, as transformers).
 * @throws ConfigError naming the file if it cannot be written.
 */
export async function writeJsonAtomic(path: string, value: unknown, options: JsonWriteOptions = {}): Promise<void> {
  const text = stringifyJson(value, options);
  const tmp = temporarySibling(path, "tmp");
  try {
    const fh = await open(tmp, "wx");
    try {
      await fh.writeFile(text, "utf8");
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new ConfigError(`cannot write: ${e instanceof Error ? e.message : String(e)}`, { file: path }, { cause: e });
  }
}
