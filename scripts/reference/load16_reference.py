"""Golden logits of the modeling fixtures loaded in 16 bits: what transformers computes for
`from_pretrained(dir, torch_dtype=torch.bfloat16)` (or float16) when the forward pass then runs in
float32 on those weights, i.e. every checkpoint tensor cast to the 16-bit dtype with torch's own cast
(round to nearest even) and upcast back to float32. prefkit's `fromPretrained(dir, { dtype })` keeps
the same 16-bit weights and computes in float32, so its logits must equal these up to float32
summation-order noise (packages/models/test/modeling/load16.test.ts).

For every fixture of packages/models/test/fixtures/golden (and ../shared/fixtures/hf-golden when
present) it writes packages/models/test/fixtures/load16/<name>.json with the logits for "bfloat16" and
"float16" (base64 float32, [B, T, V]) and, for information, how far each moved from the float32
golden. The forward pass is scripts/reference/modeling_reference.py's (transformers 4.52 op for op).
Before writing, it checks that torch's cast equals the round-to-nearest-even rounding safetensors_io
implements, and that a fixture already stored in a dtype is unchanged by the cast to it (its logits
then match the golden's to float32 noise, <= 1e-5).

Run with Debian's python (torch 1.13 and numpy), about 2 s, deterministic:

    /usr/bin/python3 scripts/reference/load16_reference.py
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modeling_reference import (  # noqa: E402
    DEFAULT_HF_GOLDEN,
    REPO_ROOT,
    ModelArgs,
    blob_to_np,
    f32_blob,
    forward,
    masked_max_diff,
)
from safetensors_io import load_safetensors, read_header, round_to_dtype  # noqa: E402

LOCAL_GOLDEN = os.path.join(REPO_ROOT, "packages", "models", "test", "fixtures", "golden")
DEFAULT_OUT = os.path.join(REPO_ROOT, "packages", "models", "test", "fixtures", "load16")
DTYPES = {"bfloat16": (torch.bfloat16, "BF16"), "float16": (torch.float16, "F16")}


def cast_like_transformers(weights: dict, dtype: torch.dtype) -> dict:
    """Each tensor as from_pretrained(torch_dtype=dtype) holds it, upcast to float32 for compute."""
    out = {}
    for name, w in weights.items():
        t = torch.from_numpy(np.ascontiguousarray(w)).to(dtype).to(torch.float32)
        out[name] = t.numpy()
    return out


def stored_dtype(path: str) -> str:
    dtypes = {info["dtype"] for name, info in read_header(path).items() if name != "__metadata__"}
    assert len(dtypes) == 1, f"{path}: mixed dtypes {dtypes}"
    return dtypes.pop()


def fixture_dirs(roots):
    for source, root in roots:
        if not os.path.isdir(root):
            print(f"note: {root} not found; skipped")
            continue
        for name in sorted(os.listdir(root)):
            d = os.path.join(root, name)
            if os.path.isfile(os.path.join(d, "golden.json")) and os.path.isfile(os.path.join(d, "config.json")):
                yield source, name, d


def build(source: str, name: str, d: str, out_dir: str) -> None:
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(d, "golden.json")) as f:
        g = json.load(f)
    args = ModelArgs.from_config(cfg)
    weights_path = os.path.join(d, "model.safetensors")
    weights = load_safetensors(weights_path)
    on_disk = stored_dtype(weights_path)
    ids = torch.tensor(g["input_ids"])
    mask = torch.tensor(g["attention_mask"])
    positions = torch.tensor(g["position_ids"])
    cmp = g["logits_compare_mask"]
    golden = blob_to_np(g["logits"])
    record = {
        "fixture": name,
        "source": source,
        "weights_file_dtype": on_disk,
        "input_ids": g["input_ids"],
        "attention_mask": g["attention_mask"],
        "position_ids": g["position_ids"],
        "logits_compare_mask": cmp,
        "dtypes": {},
    }
    for label, (dtype, st) in DTYPES.items():
        cast = cast_like_transformers(weights, dtype)
        for n, w in weights.items():  # torch's cast is the rounding prefkit implements
            assert np.array_equal(cast[n].view("<u4"), round_to_dtype(w, st).view("<u4")), f"{name}/{n}: cast differs"
        logits, _ = forward(args, cast, ids, mask, positions)
        logits = logits.numpy()
        moved = masked_max_diff(logits, golden, cmp)
        if on_disk == st:
            # The cast is the identity, so only float32 summation-order noise remains.
            for n, w in weights.items():
                assert np.array_equal(cast[n].view("<u4"), np.asarray(w, "<f4").view("<u4")), f"{name}/{n}: not identity"
            assert moved <= 1e-5, f"{name}: loading {st} weights as {label} moved the logits by {moved}"
        record["dtypes"][label] = {"logits": f32_blob(torch.from_numpy(logits)), "max_change_vs_float32_golden": moved}
        print(f"  {source}/{name} ({on_disk}) as {label}: max |logit change| vs float32 golden {moved:.2e}")
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    ap.add_argument("--hf-golden", default=DEFAULT_HF_GOLDEN, help="real-transformers fixtures (default: %(default)s)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    for source, name, d in fixture_dirs([("local", LOCAL_GOLDEN), ("hf-golden", a.hf_golden)]):
        build(source, name, d, a.out)


if __name__ == "__main__":
    main()
