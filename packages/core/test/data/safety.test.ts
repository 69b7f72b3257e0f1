// Issue 12 regressions for the data pipeline: line caps, invalid UTF-8, identical pairs, unknown roles, and
// long rows tokenised only as far as maxLength keeps.
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { Tokenizer } from "@huggingface/tokenizers";
import { describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";
import {
  convertHhRlhf,
  encodeLimited,
  loadDataset,
  preparePreferenceDataset,
  rowsFromObjects,
  tokenizePreferenceDataset,
} from "../../src/data/index.js";
import { DatasetError } from "../../src/errors/index.js";
import { rejection, scratchDir } from "./files.js";
import type { TokenizerLike } from "../../src/interfaces/index.js";
import { CharTokenizer, loadSmolLM2 } from "./tokenizers.js";

const { dir, write } = scratchDir("prefkit-data-safety-");

/** A sparse file of `bytes` bytes (no disk used) starting with `head`. */
function sparse(name: string, bytes: number, head = ""): string {
  const p = join(dir, name);
  const fd = openSync(p, "w");
  if (head) writeSync(fd, head);
  ftruncateSync(fd, bytes);
  closeSync(fd);
  return p;
}

const row = (chosen: string, rejected = "no") => JSON.stringify({ prompt: "p", chosen, rejected });

describe("line caps", () => {
  it("a 600 MB line is refused at the cap, naming file and line, without reading it whole", async () => {
    const file = sparse("huge-line.jsonl", 600 * 1024 * 1024);
    const e = await rejection(loadDataset(file));
    expect(e.message).toBe(
      `${file}, row 1: line is longer than 16 MB (maxLineBytes): not a JSON Lines file, or a row far too large to train on`,
    );
    expect(e.row).toBe(1);
  });

  it.skipIf(!existsSync("/dev/zero"))("/dev/zero as the dataset is the same clear error", async () => {
    const e = await rejection(loadDataset("/dev/zero"));
    expect(e.message).toMatch(/^\/dev\/zero, row 1: line is longer than 16 MB \(maxLineBytes\)/);
  });

  it("the cap is configurable and names the offending line, in gzip files too", async () => {
    const lines = [row("a"), row("b"), row("x".repeat(3000)), row("c")].join("\n");
    const plain = write("long-3.jsonl", lines);
    const e = await rejection(loadDataset(plain, { maxLineBytes: 2000 }));
    expect(e.message).toBe(
      `${plain}, row 3: line is longer than 0.00191 MB (maxLineBytes): not a JSON Lines file, or a row far too large to train on`,
    );
    const gz = write("long-3.jsonl.gz", gzipSync(lines));
    expect((await rejection(loadDataset(gz, { maxLineBytes: 2000 }))).row).toBe(3);
    expect((await loadDataset(plain, { maxLineBytes: 4000 })).rows).toHaveLength(4);
  });

  it("a JSON document too large for one string is refused before it is read", async () => {
    const file = sparse("huge.json", 600 * 1024 * 1024, "[");
    const e = await rejection(loadDataset(file));
    expect(e.message).toBe(
      `${file}: too large to read as one JSON document (over 500 MB): use JSON Lines (one row per line)`,
    );
  });

  it("CRLF line ends and a byte-order mark are read as nothing", async () => {
    const file = write("crlf.jsonl", `\ufeff${row("a")}\r\n${row("b")}\r\n`);
    expect((await loadDataset(file)).rows.map((r) => r.data["chosen"])).toEqual(["a", "b"]);
  });
});

describe("invalid UTF-8", () => {
  it("is counted and reported once, naming the file and the first bad line", async () => {
    const bad = Buffer.from([0xff, 0xfe]);
    const lines = [
      Buffer.from(`${row("fine")}\n`),
      Buffer.from(`${row("also fine")}\n`),
      Buffer.concat([Buffer.from('{"prompt":"p","chosen":"caf'), bad, Buffer.from('","rejected":"n"}\n')]),
      Buffer.from(`${row("ok")}\n`),
      Buffer.concat([Buffer.from('{"prompt":"p","chosen":"x'), bad, Buffer.from('","rejected":"n"}\n')]),
    ];
    const file = write("latin1.jsonl", Buffer.concat(lines));
    const warnings: string[] = [];
    const ds = await loadDataset(file, { warn: (m) => warnings.push(m) });
    expect(warnings).toEqual([
      `${file}: 2 line(s) are not valid UTF-8 (first: line 3); their invalid bytes were read as U+FFFD`,
    ]);
    expect(ds.report.invalidUtf8).toEqual({ lines: 2, first: 3 });
    expect(ds.rows).toHaveLength(5);
    const json = write(
      "latin1.json",
      Buffer.concat([Buffer.from('[\n{"a":"ok"},\n{"a":"'), bad, Buffer.from('"}\n]')]),
    );
    const w2: string[] = [];
    await loadDataset(json, { warn: (m) => w2.push(m) });
    expect(w2).toEqual([
      `${json}: 1 line(s) are not valid UTF-8 (first: line 3); their invalid bytes were read as U+FFFD`,
    ]);
    const clean: string[] = [];
    expect((await loadDataset(write("clean.jsonl", row("é")), { warn: (m) => clean.push(m) })).report.invalidUtf8).toBe(
      undefined,
    );
    expect(clean).toEqual([]);
  });
});

describe("chosen == rejected", () => {
  const FILE = "/d.jsonl";
  it("one identical pair is counted, reported and dropped; every row identical is an error", () => {
    const warnings: string[] = [];
    const rows = rowsFromObjects(
      [
        { prompt: "p", chosen: "a", rejected: "b" },
        { prompt: "p", chosen: "same", rejected: "same" },
      ],
      FILE,
    );
    const out = preparePreferenceDataset(rows, { warn: (m) => warnings.push(m) });
    expect(out.examples).toHaveLength(1);
    expect(out.report.droppedRows).toEqual([{ file: FILE, row: 2, reason: "chosen == rejected" }]);
    expect(warnings).toEqual(["format: 2 rows in, 1 out, 1 dropped (chosen == rejected: 1)"]);
    expect(preparePreferenceDataset(rows, { identicalPairs: "keep", warn: () => {} }).examples).toHaveLength(2);
    // implicit conversational pairs: identical transcripts
    const u = (content: string) => ({ role: "user", content });
    const a = (content: string) => ({ role: "assistant", content });
    const implicit = rowsFromObjects(
      [
        { chosen: [u("q"), a("yes")], rejected: [u("q"), a("no")] },
        { chosen: [u("q"), a("same")], rejected: [u("q"), a("same")] },
      ],
      FILE,
    );
    expect(preparePreferenceDataset(implicit, { warn: () => {} }).report.dropped).toEqual({ "chosen == rejected": 1 });
    const all = rowsFromObjects(
      [
        { prompt: "p", chosen: "x", rejected: "x" },
        { prompt: "q", chosen: "y", rejected: "y" },
      ],
      FILE,
    );
    const w2: string[] = [];
    expect(() => preparePreferenceDataset(all, { warn: (m) => w2.push(m) })).toThrow(
      `${FILE}: dataset has no usable rows (2 in, all dropped)`,
    );
    expect(w2).toEqual(["format: 2 rows in, 0 out, 2 dropped (chosen == rejected: 2)"]);
  });

  it("HH-RLHF transcripts that are the same are dropped and counted too", () => {
    const t = (reply: string) => `\n\nHuman: hi\n\nAssistant: ${reply}`;
    const rows = rowsFromObjects(
      [
        { chosen: t("hello"), rejected: t("go away") },
        { chosen: t("same"), rejected: t("same") },
      ],
      FILE,
    );
    const warnings: string[] = [];
    const out = convertHhRlhf(rows, { warn: (m) => warnings.push(m) });
    expect(out.examples).toHaveLength(1);
    expect(warnings).toEqual(["hh-rlhf: 2 rows in, 1 out, 1 dropped (chosen == rejected: 1)"]);
  });
});

describe("message roles", () => {
  it("an unknown role is refused naming file, row and field", () => {
    const u = (content: string) => ({ role: "user", content });
    const rows = rowsFromObjects(
      [
        {
          prompt: [u("hi")],
          chosen: [{ role: "assistant", content: "a" }],
          rejected: [{ role: "assistant", content: "b" }],
        },
        { prompt: [u("hi")], chosen: [{ role: "assistant", content: "a" }], rejected: [{ role: "usr", content: "b" }] },
      ],
      "/c.jsonl",
    );
    const e = (() => {
      try {
        preparePreferenceDataset(rows);
      } catch (x) {
        return x as DatasetError;
      }
      throw new Error("no error");
    })();
    expect(e).toBeInstanceOf(DatasetError);
    expect(e.message).toBe(
      '/c.jsonl, row 2, field "rejected[0].role": message 0 has role "usr"; expected one of system, user, assistant, tool',
    );
    const ok = rowsFromObjects([
      {
        prompt: [
          { role: "system", content: "s" },
          { role: "user", content: "u" },
          { role: "assistant", content: "a" },
          { role: "tool", content: "t" },
        ],
        chosen: [{ role: "assistant", content: "a" }],
        rejected: [{ role: "assistant", content: "b" }],
      },
    ]);
    expect(preparePreferenceDataset(ok).examples).toHaveLength(1);
  });
});

/** A tokenizer that counts the characters it was asked to encode. */
function counting(inner: TokenizerLike): TokenizerLike & { chars: number } {
  const t = Object.create(inner) as TokenizerLike & { chars: number };
  t.chars = 0;
  t.encode = (text, options) => {
    t.chars += text.length;
    return inner.encode(text, options);
  };
  return t;
}

const words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "ran", "away", "12345", "ünïcode", "🙂"];
const longText = (chars: number) => {
  const out: string[] = [];
  let n = 0;
  for (let i = 0; n < chars; i++) {
    const w = words[(i * 7 + 3) % words.length]!;
    out.push(w);
    n += w.length + 1;
  }
  return out.join(" ");
};

describe("long rows in token space", () => {
  const stories = sharedPath("assets/stories260K/tokenizer.json");
  const smol = sharedPath("assets/tokenizers/smollm2/tokenizer.json");
  const text = longText(400_000);

  const backends: Array<[string, string | undefined, () => (s: string) => number[]]> = [
    [
      "SentencePiece-style BPE without pre-tokenizer (stories260K)",
      stories,
      () => {
        const tok = new Tokenizer(JSON.parse(readFileSync(stories!, "utf8")), {});
        return (s) => tok.encode(s, { add_special_tokens: false }).ids;
      },
    ],
    [
      "byte-level BPE (SmolLM2)",
      smol,
      () => {
        const tok = loadSmolLM2(smol!);
        return (s) => tok.encode(s, { addSpecialTokens: false });
      },
    ],
  ];
  for (const [name, path, make] of backends) {
    it.skipIf(!path)(`the kept tokens equal the full encoding's, head and tail: ${name}`, () => {
      const encode = make();
      const full = encode(text);
      let chars = 0;
      const counted = (s: string) => {
        chars += s.length;
        return encode(s);
      };
      expect(encodeLimited(text, 1024, "head", counted)).toEqual(full.slice(0, 1025));
      expect(chars).toBeLessThan(text.length / 4);
      chars = 0;
      expect(encodeLimited(text, 300, "tail", counted)).toEqual(full.slice(full.length - 301));
      expect(chars).toBeLessThan(text.length / 4);
      // short texts are encoded whole, once
      chars = 0;
      expect(encodeLimited("the cat sat", 1024, "head", counted)).toEqual(encode("the cat sat"));
      expect(chars).toBe("the cat sat".length);
    });
  }

  it("a 10 MB completion is truncated to maxLength after tokenising a few thousand characters of it", () => {
    const tok = counting(new CharTokenizer({ addBos: true }));
    const huge = longText(10 * 1024 * 1024);
    const { examples, report } = tokenizePreferenceDataset(
      [{ prompt: "Once", chosen: ` ${huge}`, rejected: " short" }],
      tok,
      { maxLength: 1024, warn: () => {} },
    );
    const full = new CharTokenizer({ addBos: true }).encode(` ${huge}`, { addSpecialTokens: false });
    expect(examples[0]!.chosenIds).toEqual(full.slice(0, 1024 - 5)); // room after "<s>Once"
    expect(examples[0]!.rejectedIds).toEqual([...tok.encode(" short", { addSpecialTokens: false }), 2]);
    expect(report.truncated).toBe(1);
    expect(tok.chars).toBeLessThan(200_000);
  });
});
