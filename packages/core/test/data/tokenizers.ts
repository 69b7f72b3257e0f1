/**
 * Test-only tokenizers implementing core's `TokenizerLike`:
 * - `CharTokenizer`: one id per character, fast and transparent, with configurable specials and template.
 * - `loadSmolLM2`: SmolLM2's real tokenizer.json through `@huggingface/tokenizers`, with a ChatML template
 *   rendered by `@huggingface/jinja` (core must not import `@prefkit/models`).
 */
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import type { ChatMessage, ChatTemplateOptions, TokenizerLike } from "../../src/interfaces/index.js";

export const BOS = 1;
export const EOS = 2;
const OFFSET = 10;

/** Character-level tokenizer: "<s>" → 1, "</s>" → 2, any other character → code point + 10. */
export class CharTokenizer implements TokenizerLike {
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined = EOS;
  readonly padTokenId: number | undefined = EOS;
  readonly hasChatTemplate = true;
  constructor(
    private readonly opts: {
      /** Post-processor adds BOS (like Llama). */ addBos?: boolean;
      /** Template starts with a literal "<s>". */ templateBos?: boolean;
      /** Template is not prefix-preserving: the last user turn renders differently without a generation prompt. */
      unstable?: boolean;
    } = {},
  ) {
    this.bosTokenId = opts.addBos || opts.templateBos ? BOS : undefined;
  }
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[] {
    const ids: number[] = [];
    for (let i = 0; i < text.length; ) {
      if (text.startsWith("<s>", i)) {
        ids.push(BOS);
        i += 3;
      } else if (text.startsWith("</s>", i)) {
        ids.push(EOS);
        i += 4;
      } else {
        const cp = text.codePointAt(i)!;
        ids.push(cp + OFFSET);
        i += cp > 0xffff ? 2 : 1;
      }
    }
    return (options?.addSpecialTokens ?? true) && this.opts.addBos ? [BOS, ...ids] : ids;
  }
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string {
    return ids
      .map((id) =>
        id === BOS
          ? options?.skipSpecialTokens
            ? ""
            : "<s>"
          : id === EOS
            ? options?.skipSpecialTokens
              ? ""
              : "</s>"
            : String.fromCodePoint(id - OFFSET),
      )
      .join("");
  }
  applyChatTemplate(messages: ChatMessage[], options?: ChatTemplateOptions): string {
    const gen = options?.addGenerationPrompt ?? false;
    let out = this.opts.templateBos ? "<s>" : "";
    messages.forEach((m, i) => {
      const lastUser = this.opts.unstable && !gen && m.role === "user" && i === messages.length - 2;
      out += `${m.role}:${lastUser ? m.content.toUpperCase() : m.content}</s>`;
    });
    if (gen) out += "assistant:";
    return out;
  }
}

/** ChatML, as SmolLM2-Instruct uses (without its default system prompt). */
export const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** SmolLM2's tokenizer.json + ChatML as a `TokenizerLike` (bos `<|im_start|>`=1, eos = pad = `<|im_end|>`=2). */
export function loadSmolLM2(tokenizerJsonPath: string): TokenizerLike {
  const tok = new Tokenizer(JSON.parse(readFileSync(tokenizerJsonPath, "utf8")), {});
  const template = new Template(CHATML);
  return {
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: 2,
    hasChatTemplate: true,
    encode: (text, options) => tok.encode(text, { add_special_tokens: options?.addSpecialTokens ?? true }).ids,
    decode: (ids, options) => tok.decode(ids, { skip_special_tokens: options?.skipSpecialTokens ?? false }),
    applyChatTemplate: (messages, options) =>
      template.render({
        messages,
        add_generation_prompt: options?.addGenerationPrompt ?? false,
        bos_token: "<|im_start|>",
        eos_token: "<|im_end|>",
      }),
  };
}
