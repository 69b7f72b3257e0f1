// Sampling for the demo: k continuations of one prompt, greedy (temperature 0) or sampled.

/**
 * Continue `promptIds` `k` times with the model's KV-cache generator. Returns the k completions' ids,
 * each cut before `eosTokenId` (the eos is not included) or at `maxNewTokens`.
 * @param {import("@prefkit/models").PreTrainedModelForCausalLM} model
 * @param {number[]} promptIds
 * @param {{ k?: number, maxNewTokens: number, temperature?: number, topK?: number, eosTokenId?: number, rng: import("@prefkit/core").Rng }} opts
 */
export async function sampleCompletions(model, promptIds, opts) {
  const { k = 1, maxNewTokens, temperature = 1, topK = 0, eosTokenId, rng } = opts;
  const out = await model.generate(
    Array.from({ length: k }, () => promptIds),
    {
      maxNewTokens,
      doSample: temperature > 0,
      ...(temperature > 0 ? { temperature } : {}),
      topK,
      ...(eosTokenId !== undefined ? { eosTokenId } : {}),
      rng,
    },
  );
  return out.newTokens.map((row) => {
    const end = eosTokenId === undefined ? -1 : row.indexOf(eosTokenId);
    return end >= 0 ? row.slice(0, end) : row;
  });
}
