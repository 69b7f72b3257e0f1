/**
 * Reading a text file line by line as bytes, with a cap on the length of one line and a UTF-8 check per
 * line. `readline` would instead grow one string until V8 gives up (`RangeError: Invalid string length`
 * on a 600 MB line or `/dev/zero`), and would replace invalid UTF-8 with U+FFFD without a word.
 * @module
 */
import { isUtf8 } from "node:buffer";
import { createReadStream } from "node:fs";
import { createGunzip } from "node:zlib";
import { DatasetError } from "../errors/index.js";

/** Default cap on one line of a JSON Lines file: 16 MiB. */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

/** Options of {@link readLines}. */
export interface ReadLinesOptions {
  /** Gunzip the file first. */
  gzip?: boolean;
  /** Longest line accepted, in bytes (after gunzip, without its line break). Default {@link DEFAULT_MAX_LINE_BYTES}. */
  maxLineBytes?: number;
}

/** One line of a file. */
export interface FileLine {
  /** 1-based line number. */
  lineNo: number;
  /** The line decoded as UTF-8 (invalid bytes become U+FFFD), without its `\n` or `\r\n`. */
  text: string;
  /** False when the line's bytes are not valid UTF-8. */
  validUtf8: boolean;
}

function megabytes(bytes: number): string {
  return `${Number((bytes / (1024 * 1024)).toPrecision(3))} MB`;
}

/**
 * The lines of `path` (optionally gzip-compressed), streamed: at most one line is held in memory, and a
 * line longer than `maxLineBytes` stops the read with a {@link DatasetError} naming the file and the line
 * before the line is ever assembled. A UTF-8 byte-order mark at the start of the file is dropped.
 * @param path - the file.
 * @param options - gzip and the line cap.
 * @throws DatasetError naming file and line for an over-long line; read errors propagate as they are.
 */
export async function* readLines(path: string, options: ReadLinesOptions = {}): AsyncGenerator<FileLine> {
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  if (!(Number.isSafeInteger(maxLineBytes) && maxLineBytes > 0)) {
    throw new DatasetError(`maxLineBytes must be a positive integer, got ${maxLineBytes}`, { file: path });
  }
  const raw = createReadStream(path, { highWaterMark: 1 << 20 });
  const input = options.gzip ? raw.pipe(createGunzip()) : raw;
  const parts: Buffer[] = [];
  let partBytes = 0;
  let lineNo = 1;
  const tooLong = () =>
    new DatasetError(
      `line is longer than ${megabytes(maxLineBytes)} (maxLineBytes): not a JSON Lines file, or a row far too large to train on`,
      { file: path, row: lineNo },
    );
  const finish = (bytes: Buffer): FileLine => {
    let line = bytes;
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (lineNo === 1 && line[0] === 0xef && line[1] === 0xbb && line[2] === 0xbf) line = line.subarray(3);
    return { lineNo, text: line.toString("utf8"), validUtf8: isUtf8(line) };
  };
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(0x0a, start); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
        if (partBytes + (nl - start) > maxLineBytes) throw tooLong();
        const piece = chunk.subarray(start, nl);
        const bytes = parts.length === 0 ? piece : Buffer.concat([...parts, piece]);
        parts.length = 0;
        partBytes = 0;
        yield finish(bytes);
        lineNo++;
        start = nl + 1;
      }
      if (start < chunk.length) {
        partBytes += chunk.length - start;
        if (partBytes > maxLineBytes) throw tooLong();
        // copy: the stream may reuse its chunk
        parts.push(Buffer.from(chunk.subarray(start)));
      }
    }
    if (partBytes > 0) yield finish(Buffer.concat(parts));
  } finally {
    input.destroy();
    raw.destroy();
  }
}
