import { readFileSync } from "node:fs";
import { ConfigError } from "@prefkit/core";
import { PreTrainedTokenizer, SMOLLM2_CHAT_TEMPLATE } from "@prefkit/models";
import { beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";

const file = sharedPath("assets/tokenizers/smollm2/tokenizer.json");

describe.skipIf(!file)("SmolLM2 tokenizer (byte-level BPE, no tokenizer_config.json)", () => {
  let bare: PreTrainedTokenizer;
  let chat: PreTrainedTokenizer;
  beforeAll(async () => {
    bare = await PreTrainedTokenizer.fromFiles(file!);
    // What SmolLM2-Instruct's tokenizer_config.json would add, supplied by hand.
    chat = PreTrainedTokenizer.fromObjects(JSON.parse(readFileSync(file!, "utf8")), undefined, {
      specialTokens: { bos: "<|im_start|>", eos: "<|im_end|>", pad: "<|im_end|>", unk: "<|endoftext|>" },
      chatTemplate: SMOLLM2_CHAT_TEMPLATE,
      cleanUpTokenizationSpaces: false,
    });
  });

  it("encodes Hello world to [19556, 905] without BOS and round-trips bytes", () => {
    expect(bare.encode("Hello world")).toEqual([19556, 905]);
    expect(bare.tokenize("Hello world")).toEqual(["Hello", "Ġworld"]);
    expect(bare.prefixSpecialIds).toEqual([]);
    for (const s of ["Hello world", "naïve café — 日本語 🙂", "  two  spaces\tand\ttabs\r\n", "x = 12345;"]) {
      expect(bare.decode(bare.encode(s), { cleanUpTokenizationSpaces: false })).toBe(s);
    }
  });

  it("has the ChatML specials at 0/1/2 but no special-token roles without a config", () => {
    expect(bare.tokenToId("<|endoftext|>")).toBe(0);
    expect(bare.tokenToId("<|im_start|>")).toBe(1);
    expect(bare.tokenToId("<|im_end|>")).toBe(2);
    expect([bare.bosTokenId, bare.eosTokenId, bare.padTokenId]).toEqual([undefined, undefined, undefined]);
    expect(() => bare.ensurePadToken()).toThrow(ConfigError);
    expect(bare.hasChatTemplate).toBe(false);
    expect(() => bare.applyChatTemplate([{ role: "user", content: "Hi" }])).toThrow(ConfigError);
    expect(bare.vocabSize).toBe(49152);
  });

  it("uses clean_up_tokenization_spaces=true when there is no config (the backend default)", () => {
    const ids = bare.encode("Hello , world !");
    expect(bare.decode(ids)).toBe("Hello, world!");
    expect(bare.decode(ids, { cleanUpTokenizationSpaces: false })).toBe("Hello , world !");
  });

  it("renders and tokenizes ChatML with SMOLLM2_CHAT_TEMPLATE", () => {
    const msgs = [
      { role: "user", content: "Hello world" },
      { role: "assistant", content: "Hi" },
    ];
    expect(chat.applyChatTemplate(msgs)).toBe(
      "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n" +
        "<|im_start|>user\nHello world<|im_end|>\n<|im_start|>assistant\nHi<|im_end|>\n",
    );
    const ids = chat.applyChatTemplate(msgs, { tokenize: true });
    expect(ids.filter((i) => i === 1)).toHaveLength(3);
    expect(ids.filter((i) => i === 2)).toHaveLength(3);
    expect(ids.slice(0, 2)).toEqual([1, chat.tokenToId("system")]);
    const nl = chat.tokenToId("Ċ")!;
    const user = ids.indexOf(chat.tokenToId("user")!);
    expect(ids.slice(user, user + 5)).toEqual([chat.tokenToId("user"), nl, 19556, 905, 2]);
    expect(chat.decode(ids)).toBe(chat.applyChatTemplate(msgs));
    expect([chat.bosTokenId, chat.eosTokenId, chat.padTokenId, chat.unkTokenId]).toEqual([1, 2, 2, 0]);
  });
});
