/**
 * Keeps the guides honest: every ```ts block in docs/**\/*.md runs here, in order, as its own
 * module (imports of @prefkit/* resolve to the sources through vitest's aliases). A block whose
 * info string says `ts no-run` is only a fragment and is skipped. Blocks that read ../shared
 * assets are skipped locally when ../shared is absent and fail under CI=true, like other tests.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT, sharedPath } from "../helpers/shared.js";

const DOCS = join(REPO_ROOT, "docs");
const OUT = join(REPO_ROOT, "test", ".snippets");

function markdownFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "api") continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...markdownFiles(path));
    else if (entry.name.endsWith(".md")) files.push(path);
  }
  return files.sort();
}

interface Snippet {
  file: string;
  line: number;
  code: string;
}

function snippets(file: string): Snippet[] {
  const out: Snippet[] = [];
  const lines = readFileSync(file, "utf8").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|typescript)(\s+.*)?$/.exec(lines[i]!.trim());
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i]!.trim() !== "```"; i++) body.push(lines[i]!);
    if ((open[2] ?? "").includes("no-run")) continue;
    out.push({ file, line: start + 1, code: body.join("\n") });
  }
  return out;
}

const all = markdownFiles(DOCS).flatMap(snippets);
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
const snippetFile = (index: number) => join(OUT, `snippet-${index}.ts`);
for (const [index, s] of all.entries()) writeFileSync(snippetFile(index), `${s.code}\nexport {};\n`);
afterAll(() => rmSync(OUT, { recursive: true, force: true }));

describe("docs snippets run", () => {
  it("finds snippets in the guides", () => {
    expect(all.length).toBeGreaterThan(0);
  });
  it("type-checks every snippet against the sources", () => {
    const tsconfig = {
      extends: "../../tsconfig.base.json",
      compilerOptions: {
        composite: false,
        declaration: false,
        declarationMap: false,
        noEmit: true,
        rootDir: "../..",
        paths: { "@prefkit/*": ["../../packages/*/src/index.ts"] },
      },
      include: ["*.ts"],
    };
    writeFileSync(join(OUT, "tsconfig.json"), JSON.stringify(tsconfig));
    const tsc = join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc");
    try {
      execFileSync(process.execPath, [tsc, "-p", join(OUT, "tsconfig.json")], { encoding: "utf8" });
    } catch (error) {
      const out = (error as { stdout?: string }).stdout ?? String(error);
      const where = out.replace(/snippet-(\d+)\.ts\((\d+)/g, (_m, i: string, l: string) => {
        const s = all[Number(i)]!;
        return `${relative(REPO_ROOT, s.file)}(${s.line + Number(l)}`;
      });
      expect.fail(`snippets do not type-check:\n${where}`);
    }
  });
  for (const [index, s] of all.entries()) {
    const name = `${relative(REPO_ROOT, s.file)}:${s.line}`;
    it(name, async (ctx) => {
      if (s.code.includes("../shared/") && sharedPath("") === undefined) ctx.skip();
      const path = snippetFile(index);
      expect(existsSync(path)).toBe(true);
      await import(pathToFileURL(path).href);
    });
  }
});
