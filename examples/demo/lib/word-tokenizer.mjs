/**
 * A word-level tokenizer for the demo's tiny vocabulary. It implements core's `TokenizerLike`
 * (encode/decode, special-token ids), which is all the data pipeline and the trainers need.
 * Words are split on whitespace; "." and ":" are words of their own.
 */
export class WordTokenizer {
  /** @param {string[]} words the vocabulary, after the specials `<pad>` (0), `<s>` (1), `</s>` (2), `<unk>` (3). */
  constructor(words) {
    this.vocab = ["<pad>", "<s>", "</s>", "<unk>", ...new Set(words)];
    this.ids = new Map(this.vocab.map((w, i) => [w, i]));
    this.padTokenId = 0;
    this.bosTokenId = 1;
    this.eosTokenId = 2;
    this.unkTokenId = 3;
    this.hasChatTemplate = false;
  }

  /** Vocabulary size. */
  get vocabSize() {
    return this.vocab.length;
  }

  /** Text to ids; `addSpecialTokens` (default true) prepends `<s>`, as Llama tokenizers do. */
  encode(text, options = {}) {
    const words = text
      .replace(/([.:!?,])/g, " $1 ")
      .split(/\s+/)
      .filter((w) => w.length > 0);
    const ids = words.map((w) => this.ids.get(w) ?? this.unkTokenId);
    return (options.addSpecialTokens ?? true) ? [this.bosTokenId, ...ids] : ids;
  }

  /** Ids to text (words joined by spaces). */
  decode(ids, options = {}) {
    const skip = options.skipSpecialTokens ?? false;
    return ids
      .filter((id) => !(skip && id <= 3 && id !== this.unkTokenId))
      .map((id) => this.vocab[id] ?? "<unk>")
      .join(" ");
  }

  /** The demo uses plain-text prompts; there is no chat template. */
  applyChatTemplate() {
    throw new Error("WordTokenizer has no chat template");
  }
}
