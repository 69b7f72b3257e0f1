/**
 * Internal: names for temporary files and directories used by atomic writes. Not re-exported.
 * @module
 */
import { randomBytes } from "node:crypto";

/** A unique sibling path for a temporary file or directory next to `path` (same filesystem, so rename is atomic). */
export function temporarySibling(path: string, tag: string): string {
  return `${path}.${tag}-${process.pid}-${randomBytes(4).toString("hex")}`;
}
