// Model cards and reports replace only files prefkit wrote: a user's README.md or report.html stays.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@prefkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeModelCard } from "../src/model-card.js";
import { writeReport } from "../src/report/write-report.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pk-own-files-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const card = { baseModel: "m", method: "dpo" as const, frameworkVersions: { prefkit: "0" } };

describe("files prefkit did not write are not overwritten", () => {
  it("writeModelCard refuses a user's README.md, naming it, and replaces its own card", async () => {
    const d = join(dir, "card");
    await mkdir(d);
    await writeFile(
      join(d, "README.md"),
      "# My project\n\nlibrary_name: prefkit is mentioned here but this is not a card\n",
    );
    const e = await writeModelCard(d, card).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).message).toBe(
      `${join(d, "README.md")}: exists and was not written by prefkit: not overwriting it; write into another directory`,
    );
    expect(await readFile(join(d, "README.md"), "utf8")).toMatch(/^# My project/);
    const own = join(dir, "card2");
    await mkdir(own);
    await writeModelCard(own, card);
    await writeModelCard(own, { ...card, method: "sft" });
    expect(await readFile(join(own, "README.md"), "utf8")).toContain("- sft\n");
  });

  it("writeReport refuses a user's report.html before writing any chart", async () => {
    const d = join(dir, "report");
    await mkdir(d);
    await writeFile(join(d, "report.html"), "<html>my report</html>");
    const e = await writeReport(d, { records: [{ step: 1, loss: 0.5 }] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).file).toBe(join(d, "report.html"));
    expect(await readdir(d)).toEqual(["report.html"]);
    expect(await readFile(join(d, "report.html"), "utf8")).toBe("<html>my report</html>");
    const own = join(dir, "report2");
    await writeReport(own, { records: [{ step: 1, loss: 0.5 }] });
    await writeReport(own, { records: [{ step: 1, loss: 0.4 }] });
    expect(await readFile(join(own, "report.html"), "utf8")).toContain("0.400000");
  });
});
