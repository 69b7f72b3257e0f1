/**
 * Crash-safe checkpoint directories. Only Node built-ins are imported here, on purpose: this
 * file is the part a killed process must never leave half-done, and a test runs it alone in
 * a child process.
 *
 * A checkpoint is written into `.tmp-checkpoint-N-<pid>-<time>/` next to its final place and
 * then renamed to `checkpoint-N/` in one `rename(2)`, which is atomic on POSIX file systems.
 * Replacing an existing checkpoint first renames the old one to `.old-checkpoint-N-...`;
 * deleting one renames it to `.del-checkpoint-N-...` before removing it. A reader only ever
 * sees complete `checkpoint-N/` directories. Leftovers of a killed writer are hidden names
 * that {@link cleanStaleCheckpointTemps} removes, except a complete `.old-` copy whose
 * replacement never landed, which it puts back.
 * @module
 */
import { mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Directory-name prefix of checkpoints (`checkpoint-<globalStep>`). */
export const CHECKPOINT_PREFIX = "checkpoint-";
/** The file whose presence marks a complete checkpoint. */
export const TRAINER_STATE_NAME = "trainer_state.json";

/** Staging names {@link writeDirAtomically} gives checkpoints: `.tmp-checkpoint-N-<pid>-<ms>` (and `.old-`, `.del-`). */
const TEMP_RE = /^\.(tmp|old|del)-(checkpoint-\d+)-(\d+)-(\d+)$/;

/** A checkpoint found on disk. */
export interface CheckpointEntry {
  /** Global step in the directory name. */
  step: number;
  /** Absolute or `outputDir`-relative path of the directory. */
  dir: string;
}

/** When this process started (ms since the epoch). */
const PROCESS_START_MS = Math.floor(performance.timeOrigin);

/** Start time (ms since the epoch, ±1 s) of process `pid` from Linux's /proc, or undefined elsewhere. */
async function processStartMs(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // Field 22 (starttime, in clock ticks since boot) counts from after the ")" that ends the command name.
    const ticks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
    const boot = /^btime (\d+)$/m.exec(await readFile("/proc/stat", "utf8"));
    // USER_HZ is 100 on every Linux that Node runs on.
    return boot && Number.isFinite(ticks) ? Number(boot[1]) * 1000 + ticks * 10 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * True when the writer that stamped a staging name with `pid` at `stampMs` can no longer be running: the
 * pid is gone, or it now belongs to a process that started after the stamp (pids are reused, and a resumed
 * run in a fresh container or session often gets the same small pid as the killed one, even our own).
 */
async function writerIsGone(pid: number, stampMs: number): Promise<boolean> {
  if (pid === process.pid) return stampMs < PROCESS_START_MS;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return true;
  }
  const started = await processStartMs(pid);
  return started !== undefined && started > stampMs + 2000;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Write a directory atomically: `write` fills a fresh temporary sibling directory, which is
 * then renamed to `finalDir`. An existing `finalDir` is replaced (moved aside first, so there
 * is never a moment without a complete copy under some name). If `write` throws, the
 * temporary directory is removed and the error rethrown.
 */
export async function writeDirAtomically(finalDir: string, write: (tmpDir: string) => Promise<void>): Promise<void> {
  const parent = dirname(finalDir);
  await mkdir(parent, { recursive: true });
  const stamp = `${process.pid}-${Date.now()}`;
  const tmp = join(parent, `.tmp-${basename(finalDir)}-${stamp}`);
  await mkdir(tmp);
  try {
    await write(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  if (await exists(finalDir)) {
    const old = join(parent, `.old-${basename(finalDir)}-${stamp}`);
    await rename(finalDir, old);
    await rename(tmp, finalDir);
    await rm(old, { recursive: true, force: true });
  } else {
    await rename(tmp, finalDir);
  }
}

/** Remove a directory atomically (rename to a hidden trash name, then delete). */
export async function removeDirAtomically(dir: string): Promise<void> {
  const trash = join(dirname(dir), `.del-${basename(dir)}-${process.pid}-${Date.now()}`);
  await rename(dir, trash);
  await rm(trash, { recursive: true, force: true });
}

/** Complete checkpoints (`checkpoint-N/` holding `trainer_state.json`) in `outputDir`, oldest step first. */
export async function listCheckpoints(outputDir: string): Promise<CheckpointEntry[]> {
  let names: string[];
  try {
    names = await readdir(outputDir);
  } catch {
    return [];
  }
  const out: CheckpointEntry[] = [];
  for (const name of names) {
    const m = /^checkpoint-(\d+)$/.exec(name);
    if (!m) continue;
    const dir = join(outputDir, name);
    if (await exists(join(dir, TRAINER_STATE_NAME))) out.push({ step: Number(m[1]), dir });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest complete checkpoint directory in `outputDir`, or undefined. */
export async function latestCheckpoint(outputDir: string): Promise<string | undefined> {
  return (await listCheckpoints(outputDir)).at(-1)?.dir;
}

/**
 * Clean up after writers that died mid-save (hidden directories whose process is gone, including one
 * whose pid now belongs to a newer process):
 * `.tmp-*` and `.del-*` are removed; an `.old-checkpoint-N-*` is renamed back to
 * `checkpoint-N` if that does not exist (the writer died between its two renames), else
 * removed. Returns the removed paths.
 */
export async function cleanStaleCheckpointTemps(outputDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(outputDir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_RE.exec(name);
    if (!m || !(await writerIsGone(Number(m[3]), Number(m[4])))) continue;
    const original = join(outputDir, m[2]!);
    if (m[1] === "old" && !(await exists(original))) {
      await rename(join(outputDir, name), original);
      continue;
    }
    await rm(join(outputDir, name), { recursive: true, force: true });
    removed.push(join(outputDir, name));
  }
  return removed;
}

/**
 * Keep at most `limit` checkpoints, deleting the oldest first. The newest and `keep` (the
 * best checkpoint) are never deleted, so with `limit` 1 and a best checkpoint that is not the
 * newest, two remain, as in transformers. Returns the deleted directories.
 */
export async function rotateCheckpoints(outputDir: string, limit: number, keep?: string | null): Promise<string[]> {
  const all = await listCheckpoints(outputDir);
  const newest = all.at(-1)?.dir;
  const protectedDirs = new Set([newest, keep ?? undefined].filter((d): d is string => !!d).map((d) => basename(d)));
  let excess = all.length - limit;
  const deleted: string[] = [];
  for (const c of all) {
    if (excess <= 0) break;
    if (protectedDirs.has(basename(c.dir))) continue;
    await removeDirAtomically(c.dir);
    deleted.push(c.dir);
    excess--;
  }
  return deleted;
}
