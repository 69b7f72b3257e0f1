/**
 * Tokenising only the part of a long text that a token limit can keep, so that a huge row costs a few
 * thousand characters of tokenisation instead of all of it.
 * @module
 */

/** Texts up to this many characters per needed token (plus {@link LONG_TEXT_SLACK}) are encoded whole. */
const CHARS_PER_TOKEN_BOUND = 32;
/** Characters always encoded whole, whatever the limit. */
const LONG_TEXT_SLACK = 4096;
/** A probe must give this many tokens beyond the limit, so that the cut cannot reach the tokens kept. */
const PROBE_MARGIN = 8;

/** Where to cut `text` near `at` without splitting a word (or a surrogate pair) when it can be helped. */
function cutPoint(text: string, at: number, side: "head" | "tail"): number {
  const space = side === "head" ? text.lastIndexOf(" ", at) : text.indexOf(" ", at);
  // head: cut before a space; tail: start right after one (both are word boundaries for every tokenizer)
  const near = side === "head" ? space > at / 2 : space >= 0 && space < at + (text.length - at) / 2;
  let cut = near ? (side === "head" ? space : space + 1) : at;
  const code = text.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut--;
  return cut;
}

function sameRange(a: readonly number[], b: readonly number[], n: number, fromEnd: boolean): boolean {
  if (a.length < n || b.length < n) return false;
  for (let i = 0; i < n; i++) {
    if ((fromEnd ? a[a.length - 1 - i] : a[i]) !== (fromEnd ? b[b.length - 1 - i] : b[i])) return false;
  }
  return true;
}

/**
 * The tokens of a long `text` that a limit of `limit` tokens can keep, without tokenising all of it: the
 * first `limit + 1` (`side: "head"`) or the last `limit + 1` (`"tail"`) tokens of `encode(text)`, or all of
 * them when there are no more. One more than the limit is returned so the caller still sees that the text
 * was longer and truncates (and counts) it as usual.
 *
 * Texts shorter than 32 characters per kept token (plus 4096) are encoded whole. Longer ones are
 * encoded from a piece cut at a word boundary, growing 4× until the piece yields more than `limit` tokens
 * and a piece twice as long agrees on the tokens kept (so a merge across the cut cannot change them);
 * otherwise the whole text is encoded. A 10 MB row cut to 1024 tokens costs a few thousand characters of
 * tokenisation instead of ten million.
 */
export function encodeLimited(
  text: string,
  limit: number | null | undefined,
  side: "head" | "tail",
  encode: (text: string) => number[],
): number[] {
  if (limit == null || text.length <= CHARS_PER_TOKEN_BOUND * (limit + 1) + LONG_TEXT_SLACK) return encode(text);
  const keep = limit + 1;
  const piece = (chars: number) =>
    side === "head"
      ? text.slice(0, cutPoint(text, chars, "head"))
      : text.slice(cutPoint(text, text.length - chars, "tail"));
  for (let chars = Math.max(LONG_TEXT_SLACK, 8 * keep); 2 * chars < text.length; chars *= 4) {
    const ids = encode(piece(chars));
    if (ids.length < keep + PROBE_MARGIN) continue;
    if (sameRange(ids, encode(piece(2 * chars)), keep, side === "tail")) {
      return side === "head" ? ids.slice(0, keep) : ids.slice(ids.length - keep);
    }
  }
  return encode(text);
}
