// The example's reward functions, as `prefkit grpo --reward-funcs examples/grpo/rewards.mjs` loads them: every
// named export is a reward function (completions, prompts, ids) → one number (or null) per completion, logged
// under its export name (`rewards/uses_happy/mean`, …).

/** Words of a text (letters and apostrophes), lower-cased. */
const words = (text) => text.toLowerCase().match(/[a-z']+/g) ?? [];

/** The word budget of {@link short_sentence}. */
const MAX_WORDS = 6;

/** 1 when the story uses the word "happy" (whole word, any case). */
export const uses_happy = (completions) => completions.map((c) => (words(c).includes("happy") ? 1 : 0));

/** 1 when the completion ends with a full stop and has at most 6 words. */
export const short_sentence = (completions) =>
  completions.map((c) => (c.trim().endsWith(".") && words(c).length <= MAX_WORDS ? 1 : 0));
