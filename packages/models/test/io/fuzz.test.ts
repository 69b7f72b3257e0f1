/**
 * Fuzzing the safetensors parser: on any input it either returns or throws a CheckpointError
 * that names the file. Never a RangeError, TypeError or a hang.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError } from "@prefkit/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  parseSafetensors,
  readSafetensors,
  SAFETENSORS_DTYPE_BYTES,
  serializeSafetensors,
} from "../../src/io/index.js";
import { craft, randomData, tempDir } from "./helpers.js";

const FILE = "fuzz.safetensors";
const RUNS = 500;

/** Parse and return "ok" or "rejected"; anything other than a CheckpointError fails the property. */
function parseOrReject(bytes: Uint8Array): "ok" | "rejected" {
  try {
    parseSafetensors(bytes, FILE);
    return "ok";
  } catch (e) {
    if (!(e instanceof CheckpointError)) throw e;
    expect(e.file).toBe(FILE);
    return "rejected";
  }
}

const validFile = serializeSafetensors(
  {
    "model.embed_tokens.weight": { shape: [8, 4], data: randomData(32, 1) },
    "model.norm.weight": { shape: [4], data: randomData(4, 2), dtype: "BF16" },
    "lm_head.weight": { shape: [8, 4], data: randomData(32, 3), dtype: "F16" },
    ids: { shape: [3], data: new Float32Array([1, 2, 3]), dtype: "I64" },
  },
  { format: "pt" },
);

/** Where validFile's tensor bytes start: the 8-byte length, then the JSON header. */
const VALID_HEADER_END = 8 + Number(new DataView(validFile.buffer, validFile.byteOffset).getBigUint64(0, true));

const dtypeArb = fc.oneof(
  fc.constantFrom(...Object.keys(SAFETENSORS_DTYPE_BYTES)),
  fc.constantFrom("F8_E4M3", "U64", "C64", "", "f32"),
  fc.anything(),
);
const numberish = fc.oneof(
  fc.nat(64),
  fc.integer({ min: -5, max: 5 }),
  fc.double(),
  fc.constantFrom(2 ** 53, 2 ** 64, 1e308, -0),
  fc.string(),
  fc.constant(null),
);
const entryArb = fc.record(
  {
    dtype: dtypeArb,
    shape: fc.oneof(fc.array(numberish, { maxLength: 4 }), fc.anything()),
    data_offsets: fc.oneof(fc.array(numberish, { maxLength: 3 }), fc.tuple(fc.nat(64), fc.nat(64)), fc.anything()),
  },
  { requiredKeys: [] },
);
const headerArb = fc.dictionary(
  fc.oneof(fc.string(), fc.constantFrom("__metadata__", "__proto__", "constructor")),
  fc.oneof(entryArb, fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer())), fc.jsonValue()),
  { maxKeys: 5 },
);

describe("parseSafetensors fuzz (fast-check)", () => {
  it("random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        parseOrReject(bytes);
      }),
      { numRuns: RUNS },
    );
  });

  it("random bytes behind a plausible header length", () => {
    fc.assert(
      fc.property(fc.nat(200), fc.uint8Array({ maxLength: 300 }), (n, body) => {
        const bytes = new Uint8Array(8 + body.length);
        new DataView(bytes.buffer).setBigUint64(0, BigInt(n), true);
        bytes.set(body, 8);
        if (body.length > 0) bytes[8] = 0x7b; // "{"
        parseOrReject(bytes);
      }),
      { numRuns: RUNS },
    );
  });

  it("random JSON headers with random data", () => {
    fc.assert(
      fc.property(fc.oneof(headerArb, fc.jsonValue()), fc.uint8Array({ maxLength: 64 }), (header, data) => {
        parseOrReject(craft(header, data));
      }),
      { numRuns: RUNS },
    );
  });

  it("well-formed random files parse back to what was written", () => {
    const tensorArb = fc.record({
      shape: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }),
      dtype: fc.constantFrom("F32", "F16", "BF16", "F64"),
    });
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1 }), tensorArb, { maxKeys: 4 }), (spec) => {
        const tensors = Object.entries(spec).map(([name, t], i) => {
          const n = t.shape.reduce((a, b) => a * b, 1);
          return [name, { ...t, data: randomData(n, i + 1).map((v) => Math.round(v * 64) / 64) }] as const;
        });
        const input = new Map(tensors as Array<[string, { shape: number[]; dtype: "F32"; data: Float32Array }]>);
        const parsed = parseSafetensors(serializeSafetensors(input), FILE);
        expect(parsed.tensors.size).toBe(input.size);
        for (const [name, t] of input) {
          expect(parsed.tensors.get(name)).toEqual({ dtype: t.dtype, shape: t.shape, data: t.data });
        }
      }),
      { numRuns: 200 },
    );
  });

  it("corrupted valid files: flipped bytes, truncation, changed header length", () => {
    const mutation = fc.oneof(
      fc.record({
        kind: fc.constant("flip" as const),
        at: fc.nat(validFile.length - 1),
        xor: fc.integer({ min: 1, max: 255 }),
      }),
      fc.record({ kind: fc.constant("truncate" as const), at: fc.nat(validFile.length - 1) }),
      fc.record({ kind: fc.constant("length" as const), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
      fc.record({ kind: fc.constant("length" as const), value: fc.bigInt({ min: 0n, max: 400n }) }),
      fc.record({ kind: fc.constant("append" as const), extra: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => {
        let bytes = validFile.slice();
        for (const m of mutations) {
          if (m.kind === "flip") {
            if (m.at < bytes.length) bytes[m.at]! ^= m.xor;
          } else if (m.kind === "truncate") {
            bytes = bytes.slice(0, m.at);
          } else if (m.kind === "length") {
            if (bytes.length >= 8) new DataView(bytes.buffer).setBigUint64(0, m.value, true);
          } else {
            const longer = new Uint8Array(bytes.length + m.extra.length);
            longer.set(bytes);
            longer.set(m.extra, bytes.length);
            bytes = longer;
          }
        }
        const result = parseOrReject(bytes);
        // Without flipped bytes, truncation, another header length or extra bytes cannot give a valid file
        // (barring a length reduced by exactly the header's padding plus a matching truncation), unless they
        // only changed tensor bytes: truncating the last k bytes and appending k others is a valid file.
        const dataOnly =
          bytes.length === validFile.length && bytes.subarray(0, VALID_HEADER_END).every((b, i) => b === validFile[i]);
        if (mutations.every((m) => m.kind !== "flip") && !dataOnly) expect(result).toBe("rejected");
      }),
      { numRuns: RUNS },
    );
  });

  it("the streaming file reader agrees with the in-memory parser on corrupted files", async () => {
    const { dir, cleanup } = await tempDir();
    const path = join(dir, FILE);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.nat(validFile.length - 1),
          fc.integer({ min: 1, max: 255 }),
          fc.nat(validFile.length),
          async (at, xor, cut) => {
            const bytes = validFile.slice(0, Math.max(cut, at + 1));
            bytes[at]! ^= xor;
            await writeFile(path, bytes);
            let fromDisk: unknown;
            try {
              fromDisk = await readSafetensors(path);
            } catch (e) {
              if (!(e instanceof CheckpointError)) throw e;
              fromDisk = "rejected";
            }
            let inMemory: unknown;
            try {
              inMemory = parseSafetensors(bytes, path);
            } catch {
              inMemory = "rejected";
            }
            expect(fromDisk).toEqual(inMemory);
          },
        ),
        { numRuns: 60 },
      );
    } finally {
      await cleanup();
    }
  });
});
