import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cleanStaleCheckpointTemps,
  latestCheckpoint,
  listCheckpoints,
  rotateCheckpoints,
  writeDirAtomically,
} from "../../src/checkpoint/atomic.js";

// The child runs the real atomic.ts, transpiled on the fly (it imports only node built-ins).
const CHILD = `
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeDirAtomically } from "./atomic.mjs";
const [out, mode] = process.argv.slice(2);
const state = (step) => JSON.stringify({ global_step: step, epoch: step / 2, log_history: [] });
if (mode === "new") {
  await writeDirAtomically(join(out, "checkpoint-1"), async (d) => {
    await writeFile(join(d, "model.safetensors"), "A".repeat(4096));
    await writeFile(join(d, "trainer_state.json"), state(1));
  });
}
const target = mode === "new" ? "checkpoint-2" : "checkpoint-1";
await writeDirAtomically(join(out, target), async (d) => {
  await writeFile(join(d, "model.safetensors"), "B".repeat(4096));
  await writeFile(join(d, "trainer_state.json"), state(2));
  process.stdout.write("MID-SAVE\\n");
  setInterval(() => {}, 1000);
  await new Promise(() => {});
});
`;

let root: string;
let childDir: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "prefkit-atomic-"));
  childDir = join(root, "child");
  await writeDirAtomically(childDir, async (d) => {
    const src = await readFile(new URL("../../src/checkpoint/atomic.ts", import.meta.url), "utf8");
    const js = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    await writeFile(join(d, "atomic.mjs"), js);
    await writeFile(join(d, "child.mjs"), CHILD);
  });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Run the child until it is in the middle of a save, then SIGKILL it. */
async function killMidSave(out: string, mode: "new" | "overwrite"): Promise<void> {
  const child: ChildProcess = spawn(process.execPath, [join(childDir, "child.mjs"), out, mode], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      if (d.toString().includes("MID-SAVE")) resolve();
    });
    child.on("exit", (code) => reject(new Error(`child exited early (${code}): ${stderr}`)));
  });
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await exited;
}

describe("atomic checkpoints", () => {
  it("a process killed while writing checkpoint-2 leaves checkpoint-1 intact and no checkpoint-2", async () => {
    const out = join(root, "run-new");
    await killMidSave(out, "new");
    const names = await readdir(out);
    expect(names).toContain("checkpoint-1");
    expect(names).not.toContain("checkpoint-2");
    expect(names.some((n) => n.startsWith(".tmp-checkpoint-2-"))).toBe(true); // the half-written one, hidden
    expect(await readFile(join(out, "checkpoint-1", "model.safetensors"), "utf8")).toBe("A".repeat(4096));
    expect((await listCheckpoints(out)).map((c) => c.step)).toEqual([1]);
    expect(await latestCheckpoint(out)).toBe(join(out, "checkpoint-1"));
    const removed = await cleanStaleCheckpointTemps(out);
    expect(removed).toHaveLength(1);
    expect(await readdir(out)).toEqual(["checkpoint-1"]);
  });

  it("a process killed while overwriting checkpoint-1 leaves the old checkpoint-1", async () => {
    const out = join(root, "run-overwrite");
    await writeDirAtomically(join(out, "checkpoint-1"), async (d) => {
      await writeFile(join(d, "model.safetensors"), "A".repeat(4096));
      await writeFile(join(d, "trainer_state.json"), "{}");
    });
    await killMidSave(out, "overwrite");
    expect(await readFile(join(out, "checkpoint-1", "model.safetensors"), "utf8")).toBe("A".repeat(4096));
    await cleanStaleCheckpointTemps(out);
    expect(await readdir(out)).toEqual(["checkpoint-1"]);
  });

  it("puts back a complete old checkpoint when the writer died between its two renames", async () => {
    const out = join(root, "between-renames");
    const deadPid = spawnSync(process.execPath, ["-e", ""]).pid;
    const old = join(out, `.old-checkpoint-5-${deadPid}-1`);
    await mkdir(old, { recursive: true });
    await writeFile(join(old, "trainer_state.json"), '{"global_step":5,"epoch":1,"log_history":[]}');
    await mkdir(join(out, `.tmp-checkpoint-5-${deadPid}-1`));
    await mkdir(join(out, `.del-checkpoint-2-${deadPid}-1`));
    expect(await listCheckpoints(out)).toEqual([]);
    await cleanStaleCheckpointTemps(out);
    expect(await readdir(out)).toEqual(["checkpoint-5"]);
    expect(await latestCheckpoint(out)).toBe(join(out, "checkpoint-5"));
  });

  it("ignores directories without trainer_state.json, rotates oldest first and keeps the best", async () => {
    const out = join(root, "rotate");
    for (const step of [1, 2, 3, 4]) {
      await writeDirAtomically(join(out, `checkpoint-${step}`), async (d) => {
        await writeFile(join(d, "trainer_state.json"), "{}");
      });
    }
    await writeDirAtomically(join(out, "checkpoint-9"), async () => {}); // incomplete: no state file
    expect((await listCheckpoints(out)).map((c) => c.step)).toEqual([1, 2, 3, 4]);
    const deleted = await rotateCheckpoints(out, 2, join(out, "checkpoint-1"));
    expect(deleted.map((d) => d.split("/").at(-1))).toEqual(["checkpoint-2", "checkpoint-3"]);
    expect((await listCheckpoints(out)).map((c) => c.step)).toEqual([1, 4]);
  });
});
