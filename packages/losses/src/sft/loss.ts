import { type CompletionInputs, defineLoss } from "@prefkit/core";

/**
 * SFT's loss: the token-mean next-token cross-entropy over the batch's loss tokens (TRL's `SFTTrainer`),
 * registered as `"nll"`. A `"completion"` loss: a user may register another under its own name.
 */
export const nllLoss = defineLoss("nll", "completion", (inputs: CompletionInputs) => ({ loss: inputs.nll }));
