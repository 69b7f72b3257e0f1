"""PEFT-format LoRA fixture for prefkit (packages/models/test/lora/fixtures/peft_llama_gqa/).

The `peft` Python package is NOT installed on this machine and PyPI is unreachable, so the adapter
directory is written from PEFT's documented on-disk format (PEFT 0.10+ `save_pretrained`):

- `adapter_config.json`: `LoraConfig.to_dict()` with `peft_type: "LORA"`, `task_type`, `r`, `lora_alpha`,
  `target_modules`, `lora_dropout`, `use_rslora`, `modules_to_save`, `base_model_name_or_path`, ...
  (`inference_mode: true` as save_pretrained sets it).
- `adapter_model.safetensors`: `get_peft_model_state_dict` keys, i.e. the module path of the
  `PeftModel` with the adapter name removed:
  `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` ([r, in]) and `...lora_B.weight`
  ([out, r]); float32; metadata {"format": "pt"}.

The golden logits are computed in torch with PEFT's `lora.Linear.forward` semantics (eval mode, so no
dropout): y = base(x) + lora_B(lora_A(x)) * scaling, scaling = lora_alpha / r (lora_alpha / sqrt(r) with
rslora), on top of the reference decoder in modeling_reference.py (an op-for-op transformers 4.52
re-implementation). They are cross-checked against the merged-weight path W + scaling * B @ A.

The base checkpoint is the existing golden fixture `llama_gqa_left` (Llama, 2 layers, hidden 64, GQA).

Run with Debian's python (torch 1.13, numpy):

    /usr/bin/python3 scripts/reference/peft_reference.py
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import modeling_reference as mr  # noqa: E402
from safetensors_io import load_safetensors, save_safetensors  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASE_DIR = os.path.join(REPO_ROOT, "packages", "models", "test", "fixtures", "golden", "llama_gqa_left")
OUT_DIR = os.path.join(REPO_ROOT, "packages", "models", "test", "lora", "fixtures", "peft_llama_gqa")

R = 4
LORA_ALPHA = 8
TARGETS = ["q_proj", "v_proj", "down_proj"]
SEED = 1234


def lora_weights(weights: dict, num_layers: int, rng: np.random.Generator) -> dict:
    """PEFT init for A (kaiming_uniform a=sqrt(5): U(-1/sqrt(in), 1/sqrt(in))), and a NON-zero B (as after
    training) so the adapter changes the logits."""
    out = {}
    for i in range(num_layers):
        for t in TARGETS:
            sub = "mlp" if t in ("gate_proj", "up_proj", "down_proj") else "self_attn"
            module = f"model.layers.{i}.{sub}.{t}"
            w = weights[module + ".weight"]
            out_f, in_f = w.shape
            bound = 1.0 / math.sqrt(in_f)
            out[module] = (
                rng.uniform(-bound, bound, size=(R, in_f)).astype(np.float32),
                (rng.standard_normal(size=(out_f, R)) * 0.05).astype(np.float32),
            )
    return out


class LoraLinearShim:
    """Stands in for torch.nn.functional inside modeling_reference: F.linear on a targeted base weight
    becomes PEFT's lora.Linear forward (base + B(A(x)) * scaling); everything else is F itself."""

    def __init__(self, adapters: list, scaling: float):
        self.adapters = adapters  # [(base_weight_tensor, A, B)]
        self.scaling = scaling
        self.hits = 0

    def __getattr__(self, name):
        return getattr(F, name)

    def linear(self, x, weight, bias=None):
        y = F.linear(x, weight, bias)
        for base, a, b in self.adapters:
            if base.shape == weight.shape and torch.equal(base, weight):
                self.hits += 1
                return y + F.linear(F.linear(x, a), b) * self.scaling
        return y


def main():
    torch.set_num_threads(1)
    cfg = json.load(open(os.path.join(BASE_DIR, "config.json")))
    args = mr.ModelArgs.from_config(cfg)
    weights = load_safetensors(os.path.join(BASE_DIR, "model.safetensors"))
    rng = np.random.default_rng(SEED)
    adapters = lora_weights(weights, args.num_hidden_layers, rng)
    scaling = LORA_ALPHA / R

    # Inputs: two rows, the second left-padded, positions from the mask (as generation does).
    ids = rng.integers(3, args.vocab_size, size=(2, 7)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, :2] = 0
    ids[1, :2] = 0
    position_ids = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)

    base_logits, _ = mr.forward(args, weights, ids, mask, position_ids)

    shim = LoraLinearShim(
        [
            (torch.as_tensor(weights[m + ".weight"]), torch.as_tensor(a), torch.as_tensor(b))
            for m, (a, b) in adapters.items()
        ],
        scaling,
    )
    real_F = mr.F
    mr.F = shim
    try:
        lora_logits, _ = mr.forward(args, weights, ids, mask, position_ids)
    finally:
        mr.F = real_F
    assert shim.hits == len(adapters), f"adapter applied {shim.hits} times, expected {len(adapters)}"

    merged = dict(weights)
    for m, (a, b) in adapters.items():
        merged[m + ".weight"] = (
            torch.as_tensor(weights[m + ".weight"]) + scaling * (torch.as_tensor(b) @ torch.as_tensor(a))
        ).numpy()
    merged_logits, _ = mr.forward(args, merged, ids, mask, position_ids)
    merge_diff = float((merged_logits - lora_logits).abs().max())
    assert merge_diff < 1e-4, merge_diff
    lora_effect = float((lora_logits - base_logits).abs().max())
    assert lora_effect > 1e-2, f"adapter barely changes the logits ({lora_effect})"

    os.makedirs(OUT_DIR, exist_ok=True)
    adapter_config = {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": "llama_gqa_left",
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": None,
        "loftq_config": {},
        "lora_alpha": LORA_ALPHA,
        "lora_dropout": 0.05,
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": R,
        "rank_pattern": {},
        "revision": None,
        "target_modules": sorted(TARGETS),
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }
    with open(os.path.join(OUT_DIR, "adapter_config.json"), "w") as f:
        json.dump(adapter_config, f, indent=2, sort_keys=True)
        f.write("\n")
    tensors = {}
    for m, (a, b) in adapters.items():
        tensors[f"base_model.model.{m}.lora_A.weight"] = a
        tensors[f"base_model.model.{m}.lora_B.weight"] = b
    save_safetensors(os.path.join(OUT_DIR, "adapter_model.safetensors"), tensors, "F32", {"format": "pt"})

    golden = {
        "about": "PEFT-format LoRA (r=4, alpha=8, q/v/down_proj) on llama_gqa_left; logits of base+LoRA in torch "
        "with PEFT lora.Linear semantics (eval mode). peft itself was not installed: files written from "
        "PEFT's documented format.",
        "generator": "scripts/reference/peft_reference.py",
        "torch": torch.__version__,
        "base_fixture": "packages/models/test/fixtures/golden/llama_gqa_left",
        "scaling": scaling,
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "position_ids": position_ids.tolist(),
        "logits_shape": list(lora_logits.shape),
        "logits": [round(float(v), 7) for v in lora_logits.reshape(-1).tolist()],
        "max_abs_lora_minus_base": lora_effect,
        "max_abs_merged_minus_unmerged": merge_diff,
    }
    with open(os.path.join(OUT_DIR, "golden.json"), "w") as f:
        json.dump(golden, f)
    print(f"wrote {OUT_DIR}: {len(tensors)} tensors, lora effect {lora_effect:.4f}, merge diff {merge_diff:.2e}")


if __name__ == "__main__":
    main()
