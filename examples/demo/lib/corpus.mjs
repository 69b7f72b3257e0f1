/**
 * The demo's procedurally generated world: tiny stories about a child and a coloured thing.
 *
 *   prompt:      "tom loves red . story :"
 *   completion:  "tom finds a blue kite ."
 *
 * THE RULE the preference is about: **the story mentions the colour the prompt names.**
 * In the SFT corpus the story uses the prompt's colour only 3 times in 10; otherwise it is yellow
 * (a habit the base model picks up) or a random other colour. So after SFT the model follows the
 * rule about a third of the time and its greedy stories are mostly yellow. DPO pairs then prefer the
 * story with the prompt's colour (chosen) over the same story with another colour (rejected).
 */
import { Rng } from "@prefkit/core";

export const NAMES = ["tom", "ann", "max", "eva", "sam", "lia", "ben", "zoe"];
export const COLOURS = ["red", "blue", "green", "yellow", "pink", "black"];
export const OBJECTS = ["ball", "hat", "kite", "cup", "box", "car"];
const VERBS = ["finds", "sees", "has", "wants", "gets"];
const PLACES = ["park", "table", "roof", "bed"];
const TEMPLATES = [
  (n, c, o) => `${n} finds a ${c} ${o} .`,
  (n, c, o) => `${n} sees a ${c} ${o} .`,
  (n, c, o) => `${n} has a ${c} ${o} .`,
  (n, c, o) => `${n} wants a ${c} ${o} .`,
  (n, c, o, p) => `the ${c} ${o} of ${n} is on the ${p} .`,
  (n, c, o, p) => `${n} puts a ${c} ${o} on the ${p} .`,
];

/** Every word the corpus can use (the tokenizer's vocabulary). */
export const WORDS = [
  ...NAMES,
  ...COLOURS,
  ...OBJECTS,
  ...VERBS,
  ...PLACES,
  "loves",
  "story",
  "a",
  "the",
  "of",
  "is",
  "on",
  "puts",
  ".",
  ":",
];

/** The rule, stated once and used everywhere. */
export const RULE = "the story mentions the colour the prompt names";

/** A prompt for a child and a favourite colour. */
export function makePrompt(name, colour) {
  return `${name} loves ${colour} . story :`;
}

/** The colour a prompt names. */
export function promptColour(prompt) {
  return COLOURS.find((c) => prompt.split(/\s+/).includes(c));
}

/** True when `completion` satisfies {@link RULE} for `prompt`. */
export function followsRule(prompt, completion) {
  const colour = promptColour(prompt);
  return colour !== undefined && completion.split(/\s+/).includes(colour);
}

/** Every (name, colour) pair, split into training and held-out prompts (a fixed 1 in 4 held out). */
export function promptSplit(seed = 7) {
  const rng = new Rng(seed);
  const all = NAMES.flatMap((n) => COLOURS.map((c) => ({ name: n, colour: c })));
  const shuffled = rng.shuffle(all);
  const nHeld = Math.floor(all.length / 4);
  return { heldOut: shuffled.slice(0, nHeld), train: shuffled.slice(nHeld) };
}

function story(rng, name, colour) {
  const t = TEMPLATES[rng.int(TEMPLATES.length)];
  return { template: t, object: OBJECTS[rng.int(OBJECTS.length)], place: PLACES[rng.int(PLACES.length)], name, colour };
}

function render(s, colour = s.colour) {
  return ` ${s.template(s.name, colour, s.object, s.place)}`;
}

/** Probability that an SFT story uses the prompt's colour. */
export const SFT_MATCH_RATE = 0.3;
/** Probability that an SFT story is about a yellow thing, whatever the prompt says. */
export const SFT_YELLOW_RATE = 0.5;

function sftColour(rng, colour) {
  const u = rng.next();
  if (u < SFT_MATCH_RATE) return colour;
  if (u < SFT_MATCH_RATE + SFT_YELLOW_RATE) return "yellow";
  return COLOURS[rng.int(COLOURS.length)];
}

/**
 * SFT corpus: `{prompt, completion}` rows over the training prompts. The story's colour is the
 * prompt's with probability {@link SFT_MATCH_RATE}, yellow with {@link SFT_YELLOW_RATE}, else random.
 */
export function sftCorpus(pairs, n, seed = 1) {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const { name, colour } = pairs[rng.int(pairs.length)];
    const s = story(rng, name, sftColour(rng, colour));
    return { prompt: makePrompt(name, colour), completion: render(s) };
  });
}

/**
 * DPO pairs over the training prompts: the same story twice, chosen with the prompt's colour,
 * rejected with another one, drawn as the SFT corpus draws colours (so mostly yellow).
 */
export function preferencePairs(pairs, n, seed = 2) {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const { name, colour } = pairs[rng.int(pairs.length)];
    const s = story(rng, name, colour);
    // The rejected colour is what the SFT model tends to say instead: usually yellow.
    let wrong = colour;
    while (wrong === colour) wrong = sftColour(rng, colour);
    return { prompt: makePrompt(name, colour), chosen: render(s), rejected: render(s, wrong) };
  });
}
