/**
 * Internal: atomic replacement of a file through a temporary sibling, used by every writer in `io/`.
 * Not re-exported.
 * @module
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename, rm } from "node:fs/promises";

/** A unique sibling path for a temporary file or directory next to `path` (same filesystem, so rename is atomic). */
export function temporarySibling(path: string, tag: string): string {
  return `${path}.${tag}-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/**
 * Replace `path` atomically: `fill` writes a temporary sibling, which is then renamed over `path`, so
 * readers see the old file or the new one, never a part. On failure the sibling is removed and the
 * error rethrown as it is.
 */
export async function replaceFileAtomically(
  path: string,
  fill: (temporaryPath: string) => Promise<unknown>,
): Promise<void> {
  const tmp = temporarySibling(path, "tmp");
  try {
    await fill(tmp);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * {@link replaceFileAtomically} through a new file handle: `write` fills it, and it is flushed to disk
 * before the rename, so a crash leaves either the old file or the whole new one.
 */
export async function writeFileAtomically(path: string, write: (file: FileHandle) => Promise<unknown>): Promise<void> {
  await replaceFileAtomically(path, async (tmp) => {
    const fh = await open(tmp, "wx");
    try {
      await write(fh);
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}
