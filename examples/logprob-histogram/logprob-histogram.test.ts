import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sharedPath } from "../../test/helpers/shared.js";
// @ts-expect-error: a plain .mjs example without type declarations
import { main } from "./run.mjs";

const model = sharedPath("assets/stories260K");
const wiki = sharedPath("assets/wikitext2");

describe("examples/logprob-histogram", () => {
  it.skipIf(!model || !wiki)("stories score higher than WikiText-2 and the PNG is written", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pk-hist-"));
    try {
      const r = await main({ texts: 8, maxLength: 48, outDir: dir, log: () => {} });
      const [stories, wikitext] = r.datasets;
      expect(stories.values).toHaveLength(8);
      expect(wikitext.values).toHaveLength(8);
      expect(stories.mean).toBeGreaterThan(wikitext.mean + 1);
      const png = new Uint8Array(await readFile(r.png));
      expect([...png.slice(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
