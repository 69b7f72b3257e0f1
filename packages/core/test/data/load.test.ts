import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { loadDataset, streamJsonl } from "../../src/data/index.js";
import { rejection, scratchDir } from "./files.js";

const { dir, write } = scratchDir("prefkit-data-");

const rows = [
  { prompt: "a", chosen: "b", rejected: "c" },
  { prompt: "d", chosen: "e", rejected: "f" },
  { prompt: "g", chosen: "h", rejected: "i" },
];
const jsonl = rows.map((r) => JSON.stringify(r)).join("\n");

describe("loadDataset", () => {
  it("reads a JSON array with 1-based row numbers", async () => {
    const file = write("a.json", JSON.stringify(rows, null, 2));
    const ds = await loadDataset(file);
    expect(ds.format).toBe("json");
    expect(ds.rows.map((r) => r.data)).toEqual(rows);
    expect(ds.rows.map((r) => r.source)).toEqual([1, 2, 3].map((row) => ({ file, row })));
    expect(ds.report).toMatchObject({ rowsIn: 3, rowsOut: 3, droppedRows: [] });
  });

  it("reads JSONL, skipping blank lines but numbering rows by line", async () => {
    const file = write(
      "b.jsonl",
      `${JSON.stringify(rows[0])}\n\n${JSON.stringify(rows[1])}\r\n${JSON.stringify(rows[2])}\n`,
    );
    const ds = await loadDataset(file);
    expect(ds.format).toBe("jsonl");
    expect(ds.rows.map((r) => r.source.row)).toEqual([1, 3, 4]);
    expect(ds.rows[2]!.data).toEqual(rows[2]);
  });

  it("reads gzip-compressed JSONL from the magic bytes, and honours limit", async () => {
    const file = write("c.jsonl.gz", gzipSync(jsonl));
    const ds = await loadDataset(file);
    expect(ds.format).toBe("jsonl.gz");
    expect(ds.rows.map((r) => r.data)).toEqual(rows);
    const two = await loadDataset(file, { limit: 2 });
    expect(two.rows).toHaveLength(2);
    // A misleading extension does not matter: gzip is sniffed.
    const odd = write("c.data", gzipSync(jsonl));
    expect((await loadDataset(odd)).format).toBe("jsonl.gz");
  });

  it("streams JSONL row by row", async () => {
    const file = write("d.jsonl", jsonl);
    const seen: number[] = [];
    for await (const r of streamJsonl(file)) seen.push(r.source.row);
    expect(seen).toEqual([1, 2, 3]);
  });

  it("names file and row for a bad JSON line, without quoting the line", async () => {
    const secret = "SECRET-ROW-CONTENT";
    const file = write("bad.jsonl", `${JSON.stringify(rows[0])}\n${JSON.stringify(rows[1])}\n{"prompt": ${secret}\n`);
    const err = await rejection(loadDataset(file));
    expect(err.message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}, row 3: invalid JSON`));
    expect(err.row).toBe(3);
    expect(err.file).toBe(file);
    expect(err.message).not.toContain(secret);
  });

  it("drops non-object rows under skip and counts them; throws by default", async () => {
    const file = write("e.json", JSON.stringify([rows[0], 42, rows[1], null]));
    const err = await rejection(loadDataset(file));
    expect(err.message).toBe(`${file}, row 2: row is not a JSON object`);
    const warnings: string[] = [];
    const ds = await loadDataset(file, { onBadRow: "skip", warn: (m) => warnings.push(m) });
    expect(ds.rows.map((r) => r.source.row)).toEqual([1, 3]);
    expect(ds.report).toMatchObject({ rowsIn: 4, rowsOut: 2, dropped: { "not a JSON object": 2 } });
    expect(warnings).toEqual(["load: 4 rows in, 2 out, 2 dropped (not a JSON object: 2)"]);
  });

  it("rejects empty datasets clearly", async () => {
    for (const [name, content] of [
      ["empty.jsonl", ""],
      ["blank.jsonl", "\n\n  \n"],
      ["empty.json", "[]"],
      ["empty.jsonl.gz", gzipSync("")],
    ] as const) {
      const file = write(name, content);
      const err = await rejection(loadDataset(file));
      expect(err.message).toBe(`${file}: dataset is empty (no rows)`);
    }
  });

  it("reads an object holding the rows with `field`, and reports missing files", async () => {
    const file = write("f.json", JSON.stringify({ train: rows }));
    expect((await loadDataset(file, { field: "train" })).rows).toHaveLength(3);
    const wrong = await rejection(loadDataset(file, { field: "test" }));
    expect(wrong.message).toContain('field "test"');
    const missing = await rejection(loadDataset(join(dir, "nope.jsonl")));
    expect(missing.message).toMatch(/^.*nope\.jsonl: cannot read: ENOENT/);
    // A truncated gzip stream fails with the position reached, not silently short.
    const big = Array.from({ length: 2000 }, (_, i) => JSON.stringify({ prompt: `p${i}`, chosen: "c", rejected: "r" }));
    const gz = gzipSync(big.join("\n"));
    const cut = write("cut.jsonl.gz", gz.subarray(0, Math.floor(gz.length * 0.8)));
    const truncated = await rejection(loadDataset(cut));
    expect(truncated.message).toMatch(/cut\.jsonl\.gz: cannot read \(after row \d+\): unexpected end of file/);
  });
});
