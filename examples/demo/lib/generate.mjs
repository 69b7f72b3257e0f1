/**
 * Sampling for the demo: k continuations of one prompt, greedy (temperature 0) or sampled.
 * A plain loop over `model.forward` (no KV cache): the demo's sequences are short.
 */
import { tf } from "@prefkit/core";

function pick(logits, temperature, topK, rng) {
  if (temperature <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let order = Array.from(logits.keys());
  if (topK > 0 && topK < logits.length) order = order.sort((a, b) => logits[b] - logits[a]).slice(0, topK);
  const max = Math.max(...order.map((i) => logits[i]));
  const weights = order.map((i) => Math.exp((logits[i] - max) / temperature));
  let u = rng.next() * weights.reduce((a, b) => a + b, 0);
  for (let j = 0; j < order.length; j++) {
    u -= weights[j];
    if (u <= 0) return order[j];
  }
  return order[order.length - 1];
}

/**
 * Continue `promptIds` `k` times. Returns the k completions' ids, each cut after `eosTokenId`
 * (the eos is not included) or at `maxNewTokens`.
 * @param {import("@prefkit/core").CausalLM} model
 * @param {number[]} promptIds
 * @param {{ k?: number, maxNewTokens: number, temperature?: number, topK?: number, eosTokenId?: number, rng: import("@prefkit/core").Rng }} opts
 */
export async function sampleCompletions(model, promptIds, opts) {
  const { k = 1, maxNewTokens, temperature = 1, topK = 0, eosTokenId, rng } = opts;
  const rows = Array.from({ length: k }, () => [...promptIds]);
  const done = new Array(k).fill(false);
  for (let step = 0; step < maxNewTokens && done.some((d) => !d); step++) {
    const t = rows[0].length;
    const last = tf.tidy(() => {
      const { logits } = model.forward({ inputIds: rows });
      const [b, , v] = logits.shape;
      return tf.reshape(tf.slice(logits, [0, t - 1, 0], [b, 1, v]), [b, v]);
    });
    const flat = await last.data();
    const v = last.shape[1];
    last.dispose();
    for (let r = 0; r < k; r++) {
      if (done[r]) {
        rows[r].push(eosTokenId ?? 0);
        continue;
      }
      const id = pick(flat.subarray(r * v, (r + 1) * v), temperature, topK, rng);
      rows[r].push(id);
      if (id === eosTokenId) done[r] = true;
    }
  }
  return rows.map((row) => {
    const completion = row.slice(promptIds.length);
    const end = eosTokenId === undefined ? -1 : completion.indexOf(eosTokenId);
    return end >= 0 ? completion.slice(0, end) : completion;
  });
}
