"""Reference decoder mirroring Hugging Face transformers v4.52 modeling code, and the
generator of prefkit's golden fixtures (packages/models/test/fixtures/golden/).

Covers LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM and Qwen3ForCausalLM with
`attn_implementation="eager"` and float32 compute. There is no `transformers` package on
this machine, so the forward pass below re-implements the HF code op for op (same op
order, same dtypes, same additive finfo.min mask); it is checked against goldens produced
by the real transformers 4.52.4 code (../shared/fixtures/hf-golden) before anything is
written.

Run with Debian's python (it has torch 1.13 and numpy):

    /usr/bin/python3 scripts/reference/modeling_reference.py [--out DIR] [--hf-golden DIR]
"""

import argparse
import base64
import json
import math
import os
import sys
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import load_safetensors, read_header, round_to_dtype, save_safetensors  # noqa: E402

TRANSFORMERS_VERSION = "4.52.4"
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO_ROOT, "packages", "models", "test", "fixtures", "golden")
DEFAULT_HF_GOLDEN = os.path.abspath(os.path.join(REPO_ROOT, "..", "shared", "fixtures", "hf-golden"))
TORCH_DTYPE_NAME = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


# --------------------------------------------------------------------------------------
# ModelArgs: how each HF model_type reads its config.json (transformers 4.52)
# --------------------------------------------------------------------------------------
@dataclass
class ModelArgs:
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: Optional[dict]
    tie_word_embeddings: bool
    qkv_bias: bool  # bias on q_proj/k_proj/v_proj
    o_bias: bool  # bias on o_proj
    mlp_bias: bool
    qk_norm: bool  # Qwen3: RMSNorm over head_dim on q and k, before rope
    sliding_window: Optional[int]  # effective window for the eager mask (None = full causal)

    @classmethod
    def from_config(cls, cfg: dict) -> "ModelArgs":
        mt = cfg["model_type"]
        heads = cfg["num_attention_heads"]
        kv_heads = cfg.get("num_key_value_heads") or heads
        default_head_dim = cfg["hidden_size"] // heads
        if cfg.get("hidden_act", "silu") != "silu":
            raise NotImplementedError(f"hidden_act {cfg.get('hidden_act')}")
        if mt == "llama":
            # LlamaAttention: getattr(config, "head_dim", hidden // heads); attention_bias on q,k,v AND o.
            head_dim = cfg.get("head_dim") or default_head_dim
            qkv_bias = o_bias = bool(cfg.get("attention_bias", False))
            mlp_bias, qk_norm, window = bool(cfg.get("mlp_bias", False)), False, None
        elif mt == "mistral":
            # MistralConfig: head_dim or hidden // heads; no biases; the eager mask applies
            # config.sliding_window to every layer when it is not None.
            head_dim = cfg.get("head_dim") or default_head_dim
            qkv_bias = o_bias = mlp_bias = qk_norm = False
            window = cfg.get("sliding_window")
        elif mt == "qwen2":
            # Qwen2Attention: q/k/v always have a bias, o_proj never; no head_dim field.
            head_dim = cfg.get("head_dim") or default_head_dim
            qkv_bias, o_bias, mlp_bias, qk_norm = True, False, False, False
            window = _qwen_window(cfg)
        elif mt == "qwen3":
            head_dim = cfg.get("head_dim") or default_head_dim
            qkv_bias = o_bias = bool(cfg.get("attention_bias", False))
            mlp_bias, qk_norm = False, True
            window = _qwen_window(cfg)
        else:
            raise NotImplementedError(f"model_type {mt}")
        return cls(
            model_type=mt,
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_hidden_layers=cfg["num_hidden_layers"],
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=head_dim,
            rms_norm_eps=cfg["rms_norm_eps"],
            rope_theta=cfg.get("rope_theta", 10000.0),
            rope_scaling=cfg.get("rope_scaling"),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=qkv_bias,
            o_bias=o_bias,
            mlp_bias=mlp_bias,
            qk_norm=qk_norm,
            sliding_window=window,
        )


def _qwen_window(cfg: dict) -> Optional[int]:
    # Qwen2/Qwen3 only slide when use_sliding_window is true (Qwen2Config/Qwen3Config set
    # sliding_window = None otherwise). Hub Qwen2.5 configs carry a sliding_window value with
    # use_sliding_window false: that value must be ignored.
    if not cfg.get("use_sliding_window", False) or cfg.get("sliding_window") is None:
        return None
    # With use_sliding_window true only layers >= max_window_layers slide; not needed here.
    raise NotImplementedError("qwen use_sliding_window=true (per-layer windows) is not mirrored")


# --------------------------------------------------------------------------------------
# Rotary embedding (modeling_rope_utils + LlamaRotaryEmbedding)
# --------------------------------------------------------------------------------------
def compute_default_rope_parameters(base: float, dim: int):
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=torch.float) / dim))
    return inv_freq, 1.0


def compute_llama3_parameters(base: float, dim: int, rope_scaling: dict):
    inv_freq, attention_factor = compute_default_rope_parameters(base, dim)
    factor = rope_scaling["factor"]
    low_freq_factor = rope_scaling["low_freq_factor"]
    high_freq_factor = rope_scaling["high_freq_factor"]
    old_context_len = rope_scaling["original_max_position_embeddings"]

    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor

    wavelen = 2 * math.pi / inv_freq
    # wavelen < high_freq_wavelen: keep; wavelen > low_freq_wavelen: divide by factor
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    # in between: interpolate with a smooth factor
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    inv_freq_llama = torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    return inv_freq_llama, attention_factor


def rope_inv_freq(args: ModelArgs):
    rs = args.rope_scaling
    rope_type = None if rs is None else rs.get("rope_type", rs.get("type"))
    if rope_type in (None, "default"):
        return compute_default_rope_parameters(args.rope_theta, args.head_dim)
    if rope_type == "llama3":
        return compute_llama3_parameters(args.rope_theta, args.head_dim, rs)
    raise NotImplementedError(f"rope_type {rope_type}")


def rotary_cos_sin(inv_freq, attention_scaling, position_ids, dtype):
    inv_freq_expanded = inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    position_ids_expanded = position_ids[:, None, :].float()
    freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = emb.cos() * attention_scaling
    sin = emb.sin() * attention_scaling
    return cos.to(dtype), sin.to(dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    cos = cos.unsqueeze(1)
    sin = sin.unsqueeze(1)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


# --------------------------------------------------------------------------------------
# Mask: _prepare_4d_causal_attention_mask_with_cache_position (Llama; Mistral adds the window)
# --------------------------------------------------------------------------------------
def causal_mask_4d(attention_mask, dtype, sliding_window: Optional[int]):
    batch_size, target_length = attention_mask.shape
    sequence_length = target_length
    cache_position = torch.arange(sequence_length)
    min_dtype = torch.finfo(dtype).min
    causal_mask = torch.full((sequence_length, target_length), fill_value=min_dtype, dtype=dtype)
    diagonal_attend_mask = torch.arange(target_length) > cache_position.reshape(-1, 1)
    if sliding_window is not None:
        # Mistral: also mask keys with k <= q - sliding_window, i.e. q - k >= sliding_window.
        sliding_attend_mask = torch.arange(target_length) <= (cache_position.reshape(-1, 1) - sliding_window)
        diagonal_attend_mask.bitwise_or_(sliding_attend_mask)
    causal_mask *= diagonal_attend_mask
    causal_mask = causal_mask[None, None, :, :].expand(batch_size, 1, -1, -1)
    causal_mask = causal_mask.clone()
    mask_length = attention_mask.shape[-1]
    padding_mask = causal_mask[:, :, :, :mask_length] + attention_mask[:, None, None, :].to(dtype)
    padding_mask = padding_mask == 0
    causal_mask[:, :, :, :mask_length] = causal_mask[:, :, :, :mask_length].masked_fill(padding_mask, min_dtype)
    return causal_mask


# --------------------------------------------------------------------------------------
# Decoder
# --------------------------------------------------------------------------------------
def rms_norm(hidden_states, weight, eps):
    input_dtype = hidden_states.dtype
    hidden_states = hidden_states.to(torch.float32)
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    hidden_states = hidden_states * torch.rsqrt(variance + eps)
    return weight * hidden_states.to(input_dtype)


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


def attention(args: ModelArgs, w: dict, p: str, x, cos, sin, mask):
    bsz, q_len, _ = x.shape
    hidden_shape = (bsz, q_len, -1, args.head_dim)
    q = F.linear(x, w[p + "q_proj.weight"], w.get(p + "q_proj.bias")).view(hidden_shape)
    k = F.linear(x, w[p + "k_proj.weight"], w.get(p + "k_proj.bias")).view(hidden_shape)
    v = F.linear(x, w[p + "v_proj.weight"], w.get(p + "v_proj.bias")).view(hidden_shape)
    if args.qk_norm:
        q = rms_norm(q, w[p + "q_norm.weight"], args.rms_norm_eps)
        k = rms_norm(k, w[p + "k_norm.weight"], args.rms_norm_eps)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)

    # eager_attention_forward
    n_rep = args.num_attention_heads // args.num_key_value_heads
    k = repeat_kv(k, n_rep)
    v = repeat_kv(v, n_rep)
    scaling = args.head_dim**-0.5
    attn_weights = torch.matmul(q, k.transpose(2, 3)) * scaling
    attn_weights = attn_weights + mask[:, :, :, : k.shape[-2]]
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(q.dtype)
    out = torch.matmul(attn_weights, v).transpose(1, 2).contiguous()
    out = out.reshape(bsz, q_len, -1).contiguous()
    return F.linear(out, w[p + "o_proj.weight"], w.get(p + "o_proj.bias"))


def mlp(w: dict, p: str, x):
    gate = F.linear(x, w[p + "gate_proj.weight"], w.get(p + "gate_proj.bias"))
    up = F.linear(x, w[p + "up_proj.weight"], w.get(p + "up_proj.bias"))
    return F.linear(F.silu(gate) * up, w[p + "down_proj.weight"], w.get(p + "down_proj.bias"))


def forward(args: ModelArgs, weights: dict, input_ids, attention_mask, position_ids):
    """(logits [B,T,V], hidden_states list of L+1 [B,T,H]) exactly as HF's output_hidden_states."""
    w = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in weights.items()}
    input_ids = torch.as_tensor(input_ids, dtype=torch.long)
    attention_mask = torch.as_tensor(attention_mask, dtype=torch.long)
    position_ids = torch.as_tensor(position_ids, dtype=torch.long)

    h = F.embedding(input_ids, w["model.embed_tokens.weight"])
    mask = causal_mask_4d(attention_mask, h.dtype, args.sliding_window)
    inv_freq, attention_scaling = rope_inv_freq(args)
    cos, sin = rotary_cos_sin(inv_freq, attention_scaling, position_ids, h.dtype)

    hidden_states = []
    for i in range(args.num_hidden_layers):
        hidden_states.append(h)
        p = f"model.layers.{i}."
        residual = h
        h = rms_norm(h, w[p + "input_layernorm.weight"], args.rms_norm_eps)
        h = residual + attention(args, w, p + "self_attn.", h, cos, sin, mask)
        residual = h
        h = rms_norm(h, w[p + "post_attention_layernorm.weight"], args.rms_norm_eps)
        h = residual + mlp(w, p + "mlp.", h)
    h = rms_norm(h, w["model.norm.weight"], args.rms_norm_eps)
    hidden_states.append(h)
    lm_head = w["model.embed_tokens.weight"] if args.tie_word_embeddings else w["lm_head.weight"]
    logits = F.linear(h, lm_head)
    return logits, hidden_states


# --------------------------------------------------------------------------------------
# Losses / log-probs (HF ForCausalLMLoss, TRL-style per-token logps)
# --------------------------------------------------------------------------------------
def causal_lm_loss(logits, labels, ignore_index=-100):
    logits = logits.float()
    labels = F.pad(labels, (0, 1), value=ignore_index)
    shift_labels = labels[..., 1:].contiguous()
    logits = logits.view(-1, logits.shape[-1])
    return F.cross_entropy(logits, shift_labels.view(-1), ignore_index=ignore_index, reduction="mean")


def dpo_logps(logits, input_ids, loss_mask):
    logp = torch.log_softmax(logits.float(), dim=-1)
    per_token = torch.zeros(input_ids.shape, dtype=torch.float32)
    per_token[:, 1:] = torch.gather(logp[:, :-1], 2, input_ids[:, 1:, None]).squeeze(-1)
    per_token = per_token * loss_mask.float()
    n = loss_mask.sum(-1)
    s = per_token.sum(-1)
    return per_token, s, n, s / n


# --------------------------------------------------------------------------------------
# Fixture specs
# --------------------------------------------------------------------------------------
BASE_LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "mlp_bias": False,
    "model_type": "llama",
    "pretraining_tp": 1,
    "rope_scaling": None,
    "use_cache": True,
}
BASE_MISTRAL = {
    "architectures": ["MistralForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "model_type": "mistral",
    "tie_word_embeddings": False,
    "use_cache": True,
}
BASE_QWEN2 = {
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 1,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "model_type": "qwen2",
    "rope_scaling": None,
    "use_cache": True,
}
BASE_QWEN3 = dict(BASE_QWEN2, architectures=["Qwen3ForCausalLM"], model_type="qwen3", attention_bias=False)

FIXTURES = [
    {
        "name": "llama_gqa_left",
        "about": "Llama, GQA 4 query heads / 2 kv heads (head_dim 16), untied lm_head, F32, LEFT padding with generation-style position_ids.",
        "config": dict(
            BASE_LLAMA,
            head_dim=16, hidden_size=64, intermediate_size=128, max_position_embeddings=256,
            num_attention_heads=4, num_hidden_layers=2, num_key_value_heads=2, rms_norm_eps=1e-6,
            rope_theta=10000.0, tie_word_embeddings=False, vocab_size=128,
        ),
        "weights_dtype": "F32", "padding_side": "left", "pad_token_id": 0,
        "lengths": [12, 8], "prompt_lengths": [5, 3], "seed": 101, "embed_std": 0.5,
    },
    {
        "name": "llama3_rope_scaling",
        "about": "Llama 3 rope_scaling (rope_type llama3, factor 8, low 1, high 4, original_max_position_embeddings 16), rope_theta 5e5, head_dim 32 (frequencies 0-1 interpolated, 2-15 divided by 8), GQA 4/2, F32, right padding.",
        "config": dict(
            BASE_LLAMA,
            bos_token_id=1, eos_token_id=2, head_dim=32, hidden_size=64, intermediate_size=96,
            max_position_embeddings=128, num_attention_heads=4, num_hidden_layers=2, num_key_value_heads=2,
            rms_norm_eps=1e-5,
            rope_scaling={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                          "original_max_position_embeddings": 16, "rope_type": "llama3"},
            rope_theta=500000.0, tie_word_embeddings=False, vocab_size=96,
        ),
        "weights_dtype": "F32", "padding_side": "right", "pad_token_id": 0,
        "lengths": [12, 9], "prompt_lengths": [4, 4], "seed": 202, "embed_std": 0.5,
    },
    {
        "name": "llama3_rope_all_bands",
        "about": "Extra to llama3_rope_scaling: original_max_position_embeddings 64 so that all three Llama 3 bands occur (head_dim 32, rope_theta 5e5: frequencies 0-1 kept, 2 interpolated, 3-15 divided by 8); GQA 2/1, F32, right padding.",
        "config": dict(
            BASE_LLAMA,
            head_dim=32, hidden_size=32, intermediate_size=64, max_position_embeddings=512,
            num_attention_heads=2, num_hidden_layers=2, num_key_value_heads=1, rms_norm_eps=1e-5,
            rope_scaling={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                          "original_max_position_embeddings": 64, "rope_type": "llama3"},
            rope_theta=500000.0, tie_word_embeddings=False, vocab_size=64,
        ),
        "weights_dtype": "F32", "padding_side": "right", "pad_token_id": 0,
        "lengths": [12, 10], "prompt_lengths": [5, 4], "seed": 252, "embed_std": 0.5,
    },
    {
        "name": "qwen2_bias",
        "about": "Qwen2 (Qwen2.5-1.5B-like): q/k/v bias, no o_proj bias, tie_word_embeddings true (no lm_head.weight), use_sliding_window false with sliding_window 4 set (must be IGNORED: full causal attention), BF16 weights, right padding.",
        "config": dict(
            BASE_QWEN2,
            hidden_size=64, intermediate_size=128, max_position_embeddings=128, max_window_layers=1,
            num_attention_heads=4, num_hidden_layers=2, num_key_value_heads=2, rms_norm_eps=1e-6,
            rope_theta=1000000.0, sliding_window=4, tie_word_embeddings=True, use_sliding_window=False,
            vocab_size=128,
        ),
        "weights_dtype": "BF16", "padding_side": "right", "pad_token_id": 0,
        "lengths": [12, 7], "prompt_lengths": [6, 3], "seed": 303, "embed_std": 0.2,
    },
    {
        "name": "qwen3_qknorm",
        "about": "Qwen3 (Qwen3-0.6B-like): per-head q_norm/k_norm (RMSNorm over head_dim, before rope), head_dim 16 != hidden 32 / 4 heads, GQA 4/2, no attention bias, tie_word_embeddings true, F16 weights, right padding.",
        "config": dict(
            BASE_QWEN3,
            head_dim=16, hidden_size=32, intermediate_size=96, max_position_embeddings=128,
            max_window_layers=2, num_attention_heads=4, num_hidden_layers=2, num_key_value_heads=2,
            rms_norm_eps=1e-6, rope_theta=1000000.0, sliding_window=None, tie_word_embeddings=True,
            use_sliding_window=False, vocab_size=96,
        ),
        "weights_dtype": "F16", "padding_side": "right", "pad_token_id": 0,
        "lengths": [11, 12], "prompt_lengths": [4, 5], "seed": 404, "embed_std": 0.3,
    },
    {
        "name": "mistral",
        "about": "Mistral, sliding_window null (full causal), GQA 4/2, head_dim 16, untied lm_head, F32, right padding.",
        "config": dict(
            BASE_MISTRAL,
            head_dim=16, hidden_size=64, intermediate_size=128, max_position_embeddings=256,
            num_attention_heads=4, num_hidden_layers=2, num_key_value_heads=2, rms_norm_eps=1e-5,
            rope_theta=1000000.0, sliding_window=None, vocab_size=128,
        ),
        "weights_dtype": "F32", "padding_side": "right", "pad_token_id": 0,
        "lengths": [12, 8], "prompt_lengths": [5, 2], "seed": 505, "embed_std": 0.5,
    },
    {
        "name": "mistral_sliding_window",
        "about": "Mistral with sliding_window 4 < seq 12: key k visible from query q iff 0 <= q-k < 4 (the last 4 tokens including itself); GQA 4/1, head_dim 16, untied, F32, LEFT padding with generation-style position_ids.",
        "config": dict(
            BASE_MISTRAL,
            head_dim=16, hidden_size=48, intermediate_size=96, max_position_embeddings=256,
            num_attention_heads=4, num_hidden_layers=2, num_key_value_heads=1, rms_norm_eps=1e-5,
            rope_theta=10000.0, sliding_window=4, vocab_size=96,
        ),
        "weights_dtype": "F32", "padding_side": "left", "pad_token_id": 0,
        "lengths": [12, 9], "prompt_lengths": [3, 4], "seed": 606, "embed_std": 0.5,
    },
    {
        "name": "smollm_tied_bf16",
        "about": "SmolLM2-like Llama: tie_word_embeddings true (no lm_head.weight in the file), 3 query heads / 1 kv head (head_dim 16), rope_theta 1e5, pad_token_id 2, BF16 weights, LEFT padding with generation-style position_ids.",
        "config": dict(
            BASE_LLAMA,
            head_dim=16, hidden_size=48, intermediate_size=128, max_position_embeddings=2048,
            num_attention_heads=3, num_hidden_layers=2, num_key_value_heads=1, pad_token_id=2,
            rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True, vocab_size=128,
        ),
        "weights_dtype": "BF16", "padding_side": "left", "pad_token_id": 2,
        "lengths": [12, 7], "prompt_lengths": [4, 3], "seed": 707, "embed_std": 0.25,
    },
]


# --------------------------------------------------------------------------------------
# Random checkpoint and inputs
# --------------------------------------------------------------------------------------
def random_weights(args: ModelArgs, rng: np.random.Generator, embed_std: float) -> dict:
    """HF-named float32 weights; std ~ 1/sqrt(fan_in) so logits have a std of about 1-2."""
    H, I, hd = args.hidden_size, args.intermediate_size, args.head_dim
    nq, nkv = args.num_attention_heads, args.num_key_value_heads

    def linear(out_f, in_f):
        return (rng.standard_normal((out_f, in_f)) / math.sqrt(in_f)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.25 * rng.standard_normal(n)).astype(np.float32)

    def bias(n):
        return (0.5 * rng.standard_normal(n)).astype(np.float32)

    w = {"model.embed_tokens.weight": (embed_std * rng.standard_normal((args.vocab_size, H))).astype(np.float32)}
    for i in range(args.num_hidden_layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm(H)
        w[p + "post_attention_layernorm.weight"] = norm(H)
        w[p + "self_attn.q_proj.weight"] = linear(nq * hd, H)
        w[p + "self_attn.k_proj.weight"] = linear(nkv * hd, H)
        w[p + "self_attn.v_proj.weight"] = linear(nkv * hd, H)
        w[p + "self_attn.o_proj.weight"] = linear(H, nq * hd)
        if args.qkv_bias:
            w[p + "self_attn.q_proj.bias"] = bias(nq * hd)
            w[p + "self_attn.k_proj.bias"] = bias(nkv * hd)
            w[p + "self_attn.v_proj.bias"] = bias(nkv * hd)
        if args.o_bias:
            w[p + "self_attn.o_proj.bias"] = bias(H)
        if args.qk_norm:
            w[p + "self_attn.q_norm.weight"] = norm(hd)
            w[p + "self_attn.k_norm.weight"] = norm(hd)
        w[p + "mlp.gate_proj.weight"] = linear(I, H)
        w[p + "mlp.up_proj.weight"] = linear(I, H)
        w[p + "mlp.down_proj.weight"] = linear(H, I)
    w["model.norm.weight"] = norm(H)
    if not args.tie_word_embeddings:
        w["lm_head.weight"] = linear(args.vocab_size, H)
    return w


def make_inputs(spec: dict, rng: np.random.Generator, vocab_size: int):
    T = max(spec["lengths"])
    pad = spec["pad_token_id"]
    ids, mask, loss_mask = [], [], []
    for n, prompt_len in zip(spec["lengths"], spec["prompt_lengths"]):
        real = rng.integers(3, vocab_size, size=n).tolist()  # avoid ids 0-2 (pad/bos/eos)
        real_mask = [1] * n
        resp = [0] * prompt_len + [1] * (n - prompt_len)
        padding = T - n
        if spec["padding_side"] == "left":
            ids.append([pad] * padding + real)
            mask.append([0] * padding + real_mask)
            loss_mask.append([0] * padding + resp)
        else:
            ids.append(real + [pad] * padding)
            mask.append(real_mask + [0] * padding)
            loss_mask.append(resp + [0] * padding)
    ids, mask, loss_mask = (torch.tensor(x, dtype=torch.long) for x in (ids, mask, loss_mask))
    if spec["padding_side"] == "left":
        # What generate() would pass; pad slots clipped to 0 (they are masked keys and
        # excluded queries, so their value cannot change any compared output).
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    else:
        position_ids = torch.arange(T)[None, :].expand(len(spec["lengths"]), -1).clone()
    return ids, mask, loss_mask, position_ids


# --------------------------------------------------------------------------------------
# golden.json
# --------------------------------------------------------------------------------------
def f32_blob(t) -> dict:
    a = np.ascontiguousarray(np.asarray(t, dtype="<f4"))
    return {"dtype": "float32", "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def blob_to_np(blob: dict) -> np.ndarray:
    assert blob["dtype"] == "float32"
    return np.frombuffer(base64.b64decode(blob["b64"]), dtype="<f4").reshape(blob["shape"])


def first_real_label_mask(attention_mask):
    """1 at the first real token of each row: it has no real predecessor, so its label is dropped."""
    first = attention_mask.argmax(-1)
    out = torch.zeros_like(attention_mask)
    out[torch.arange(attention_mask.shape[0]), first] = 1
    return out


def golden_record(spec: dict, args: ModelArgs, ids, mask, loss_mask, position_ids, logits, hidden_states) -> dict:
    labels_all = ids.masked_fill(mask == 0, -100).masked_fill(first_real_label_mask(mask) == 1, -100)
    labels_hf_literal = ids.masked_fill(mask == 0, -100)
    labels_resp = ids.masked_fill(loss_mask == 0, -100)
    per_token, s, n, mean = dpo_logps(logits, ids, loss_mask)
    left = spec["padding_side"] == "left"
    return {
        "fixture": spec["name"],
        "about": spec["about"],
        "model_class": spec["config"]["architectures"][0],
        "weights_file_dtype": spec["weights_dtype"],
        "weights_dtype": spec["weights_dtype"],
        "compute_dtype": "float32",
        "attn_implementation": "eager",
        "source": {
            "transformers": {
                "version": TRANSFORMERS_VERSION,
                "how": "scripts/reference/modeling_reference.py: op-for-op re-implementation of the HF eager modeling code "
                "(float32 compute, weights upcast from the file dtype), verified against ../shared/fixtures/hf-golden "
                "(real transformers 4.52.4 output)",
            }
        },
        "padding_side": spec["padding_side"],
        "pad_token_id_used": spec["pad_token_id"],
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "position_ids": position_ids.tolist(),
        "position_ids_note": (
            "passed explicitly, as generate() would: cumsum(attention_mask)-1, clipped at 0 on the left padding "
            "(generate() writes 1 there; pad slots are masked keys and uncompared queries, so it cannot matter)"
            if left
            else "model forward called WITHOUT position_ids: HF uses arange(seq_len) for every row"
        ),
        "logits": f32_blob(logits),
        "logits_compare_mask": mask.tolist(),
        "logits_note": "compare logits only where logits_compare_mask==1 (padded query positions hold HF-specific garbage: eager adds finfo(float32).min to masked scores)",
        "logits_preview": logits[:, :, :6].tolist(),
        "hidden_states": [f32_blob(h) for h in hidden_states],
        "hidden_states_note": "HF output_hidden_states: [0]=embedding output, [i]=output of decoder layer i-1 for 1<=i<L, [L]=final RMSNorm applied to the output of the last layer",
        "lm_loss_all": causal_lm_loss(logits, labels_all).item(),
        "lm_loss_all_note": "HF model(labels=...).loss with labels=input_ids, -100 at padding and at the first real token of each row (mean next-token cross-entropy over the remaining shifted labels). With right padding this is exactly model(labels=input_ids with -100 at padding).loss, as in ../shared/fixtures/hf-golden; with left padding it drops the one label that HF would predict from a padded query position",
        "lm_loss_all_hf_literal": causal_lm_loss(logits, labels_hf_literal).item(),
        "lm_loss_all_hf_literal_note": "model(labels=input_ids with -100 at padding only).loss; with left padding it includes the prediction of the first real token from the last PAD position (HF garbage: do not compare). Equals lm_loss_all for right padding",
        "lm_loss_response": causal_lm_loss(logits, labels_resp).item(),
        "lm_loss_response_note": "same with labels=-100 outside the response (loss_mask==0); equals -sum(logps_sum)/sum(n_tokens)",
        "prompt_lengths": spec["prompt_lengths"],
        "dpo_logps": {
            "prompt_lengths": spec["prompt_lengths"],
            "prompt_lengths_note": "in row b the first prompt_lengths[b] REAL tokens (after any left padding) are the prompt, the remaining real tokens the response",
            "loss_mask": loss_mask.tolist(),
            "per_token_logps": per_token.tolist(),
            "per_token_logps_note": "per_token_logps[b][t] = log p(input_ids[b][t] | input_ids[b][:t]) = log_softmax(logits[b][t-1])[input_ids[b][t]] where loss_mask[b][t]==1, else 0",
            "logps_sum": s.tolist(),
            "n_tokens": n.tolist(),
            "logps_mean": mean.tolist(),
            "batch_mean_of_logps_sum": s.mean().item(),
        },
    }


def hf_config_json(cfg: dict, weights_dtype: str) -> str:
    """As PretrainedConfig.save_pretrained writes it: sorted keys, indent 2, trailing newline."""
    full = dict(cfg, torch_dtype=TORCH_DTYPE_NAME[weights_dtype], transformers_version=TRANSFORMERS_VERSION)
    return json.dumps(full, indent=2, sort_keys=True) + "\n"


def generation_config_json(cfg: dict) -> str:
    gen = {"_from_model_config": True, "transformers_version": TRANSFORMERS_VERSION}
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if cfg.get(key) is not None:
            gen[key] = cfg[key]
    return json.dumps(gen, indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------
def masked_max_diff(a, b, mask) -> float:
    a, b = np.asarray(a), np.asarray(b)
    m = np.asarray(mask, dtype=bool)
    return float(np.abs(a - b)[m].max())


def verify_against_hf_golden(root: str) -> dict:
    """Re-run the real-transformers fixtures through this reference; return max abs diffs."""
    results = {}
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.isfile(os.path.join(d, "golden.json")):
            continue
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        with open(os.path.join(d, "golden.json")) as f:
            g = json.load(f)
        args = ModelArgs.from_config(cfg)
        weights = load_safetensors(os.path.join(d, "model.safetensors"))
        ids = torch.tensor(g["input_ids"])
        mask = torch.tensor(g["attention_mask"])
        logits, hs = forward(args, weights, ids, mask, torch.tensor(g["position_ids"]))
        cmp = g["logits_compare_mask"]
        r = {
            "logits": masked_max_diff(logits.numpy(), blob_to_np(g["logits"]), cmp),
            "hidden_states": max(
                masked_max_diff(h.numpy(), blob_to_np(gh), cmp) for h, gh in zip(hs, g["hidden_states"])
            ),
        }
        loss_mask = torch.tensor(g["dpo_logps"]["loss_mask"])
        per_token, s, _, _ = dpo_logps(logits, ids, loss_mask)
        r["per_token_logps"] = float(np.abs(per_token.numpy() - np.array(g["dpo_logps"]["per_token_logps"])).max())
        r["logps_sum"] = float(np.abs(s.numpy() - np.array(g["dpo_logps"]["logps_sum"])).max())
        r["lm_loss_all"] = abs(causal_lm_loss(logits, ids.masked_fill(mask == 0, -100)).item() - g["lm_loss_all"])
        r["lm_loss_response"] = abs(causal_lm_loss(logits, ids.masked_fill(loss_mask == 0, -100)).item() - g["lm_loss_response"])
        results[name] = r
        ok = r["logits"] <= 1e-4 and r["hidden_states"] <= 1e-4 and r["logps_sum"] <= 1e-3
        print(f"  hf-golden/{name}: " + ", ".join(f"{k} {v:.2e}" for k, v in r.items()) + ("" if ok else "  <-- FAIL"))
        if not ok:
            raise SystemExit(f"reference does not reproduce hf-golden/{name}")
    return results


def naive_forward(args: ModelArgs, weights: dict, ids, mask, position_ids) -> np.ndarray:
    """Independent float64 numpy forward: per row, per real query, explicit key loop
    (k real, k <= q, q - k < window). Cross-checks mask / rope / GQA / tying logic."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    ids, mask, pos = np.asarray(ids), np.asarray(mask), np.asarray(position_ids)
    B, T = ids.shape
    hd, nq, nkv = args.head_dim, args.num_attention_heads, args.num_key_value_heads
    inv = meta_llama3_inv_freq(args)

    def norm(x, g):
        return g * x / np.sqrt((x * x).mean(-1, keepdims=True) + args.rms_norm_eps)

    def rope(x, p):  # x [heads, hd]
        ang = p * inv
        c, s = np.cos(np.concatenate([ang, ang])), np.sin(np.concatenate([ang, ang]))
        rot = np.concatenate([-x[:, hd // 2 :], x[:, : hd // 2]], -1)
        return x * c + rot * s

    def lin(x, name):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    out = np.zeros((B, T, args.vocab_size))
    for b in range(B):
        h = w["model.embed_tokens.weight"][ids[b]]
        for i in range(args.num_hidden_layers):
            p = f"model.layers.{i}."
            x = norm(h, w[p + "input_layernorm.weight"])
            q = lin(x, p + "self_attn.q_proj").reshape(T, nq, hd)
            k = lin(x, p + "self_attn.k_proj").reshape(T, nkv, hd)
            v = lin(x, p + "self_attn.v_proj").reshape(T, nkv, hd)
            if args.qk_norm:
                q = norm(q, w[p + "self_attn.q_norm.weight"])
                k = norm(k, w[p + "self_attn.k_norm.weight"])
            q = np.stack([rope(q[t], pos[b, t]) for t in range(T)])
            k = np.stack([rope(k[t], pos[b, t]) for t in range(T)])
            att = np.zeros((T, nq, hd))
            for t in range(T):
                if not mask[b, t]:
                    continue
                keys = [j for j in range(t + 1) if mask[b, j] and (args.sliding_window is None or t - j < args.sliding_window)]
                for hq in range(nq):
                    hk = hq // (nq // nkv)
                    sc = np.array([q[t, hq] @ k[j, hk] for j in keys]) / math.sqrt(hd)
                    pr = np.exp(sc - sc.max())
                    pr /= pr.sum()
                    att[t, hq] = sum(pj * v[j, hk] for pj, j in zip(pr, keys))
            h = h + lin(att.reshape(T, nq * hd), p + "self_attn.o_proj")
            x = norm(h, w[p + "post_attention_layernorm.weight"])
            g = lin(x, p + "mlp.gate_proj")
            h = h + lin(g / (1 + np.exp(-g)) * lin(x, p + "mlp.up_proj"), p + "mlp.down_proj")
        h = norm(h, w["model.norm.weight"])
        head = w["model.embed_tokens.weight"] if args.tie_word_embeddings else w["lm_head.weight"]
        out[b] = h @ head.T
    return out


def meta_llama3_inv_freq(args: ModelArgs) -> np.ndarray:
    """float64 inv_freq, with Llama 3 scaling written as Meta's reference `apply_scaling` loop."""
    freqs = [1.0 / args.rope_theta ** (i / args.head_dim) for i in range(0, args.head_dim, 2)]
    rs = args.rope_scaling
    if rs is None or rs.get("rope_type", rs.get("type")) in (None, "default"):
        return np.array(freqs)
    assert rs["rope_type"] == "llama3"
    low_wavelen = rs["original_max_position_embeddings"] / rs["low_freq_factor"]
    high_wavelen = rs["original_max_position_embeddings"] / rs["high_freq_factor"]
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(freq)
        elif wavelen > low_wavelen:
            out.append(freq / rs["factor"])
        else:
            smooth = (rs["original_max_position_embeddings"] / wavelen - rs["low_freq_factor"]) / (
                rs["high_freq_factor"] - rs["low_freq_factor"]
            )
            out.append((1 - smooth) * freq / rs["factor"] + smooth * freq)
    return np.array(out)


def fixture_checks(spec, args, weights, ids, mask, position_ids, logits) -> dict:
    checks = {}
    checks["naive_float64_max_diff"] = masked_max_diff(logits.numpy(), naive_forward(args, weights, ids, mask, position_ids), mask)
    # Each padded row must give the same real-token logits as the same tokens run alone unpadded.
    worst = 0.0
    for b in range(ids.shape[0]):
        real = mask[b].bool()
        if real.all():
            continue
        solo_ids = ids[b][real][None]
        n = solo_ids.shape[1]
        solo, _ = forward(args, weights, solo_ids, torch.ones(1, n, dtype=torch.long), torch.arange(n)[None])
        worst = max(worst, float((logits[b][real] - solo[0]).abs().max()))
    checks["padded_vs_unpadded_max_diff"] = worst
    # The feature under test must actually change the logits (so a wrong adapter fails).
    cfg = spec["config"]
    alt = None
    if cfg.get("rope_scaling"):
        alt = ("without_rope_scaling", replace(args, rope_scaling=None), weights)
    elif cfg["model_type"] == "qwen2":
        alt = ("if_sliding_window_were_applied", replace(args, sliding_window=cfg["sliding_window"]), weights)
    elif cfg["model_type"] == "qwen3":
        unit = {k: (np.ones_like(v) if ("q_norm" in k or "k_norm" in k) else v) for k, v in weights.items()}
        alt = ("with_unit_qk_norm_weights", args, unit)
        checks["logits_change_without_qk_norm"] = masked_max_diff(
            logits.numpy(), forward(replace(args, qk_norm=False), weights, ids, mask, position_ids)[0].numpy(), mask
        )
    elif cfg["model_type"] == "mistral" and cfg.get("sliding_window"):
        alt = ("without_sliding_window", replace(args, sliding_window=None), weights)
    if alt is not None:
        alt_logits, _ = forward(alt[1], alt[2], ids, mask, position_ids)
        checks["logits_change_" + alt[0]] = masked_max_diff(logits.numpy(), alt_logits.numpy(), mask)
    if cfg["model_type"] == "qwen2":
        no_bias = {k: (np.zeros_like(v) if k.endswith(".bias") else v) for k, v in weights.items()}
        nb, _ = forward(args, no_bias, ids, mask, position_ids)
        checks["logits_change_without_qkv_bias"] = masked_max_diff(logits.numpy(), nb.numpy(), mask)
    if spec["weights_dtype"] != "F32":
        # Golden must come from the rounded weights: show the rounding is visible.
        checks["weights_rounding_max_abs"] = max(float(np.abs(v - spec["_unrounded"][k]).max()) for k, v in weights.items())
        unrounded, _ = forward(args, spec["_unrounded"], ids, mask, position_ids)
        checks["logits_change_if_weights_not_rounded"] = masked_max_diff(logits.numpy(), unrounded.numpy(), mask)
    if cfg.get("rope_scaling"):
        base = compute_default_rope_parameters(args.rope_theta, args.head_dim)[0]
        scaled = rope_inv_freq(args)[0]
        ratio = (base / scaled).numpy()
        checks["rope_freqs_kept"] = int(np.isclose(ratio, 1.0).sum())
        checks["rope_freqs_divided_by_factor"] = int(np.isclose(ratio, cfg["rope_scaling"]["factor"]).sum())
        checks["rope_freqs_interpolated"] = len(ratio) - checks["rope_freqs_kept"] - checks["rope_freqs_divided_by_factor"]
    return checks


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------
def build_fixture(spec: dict, out_dir: str) -> dict:
    cfg = spec["config"]
    args = ModelArgs.from_config(cfg)
    rng = np.random.default_rng(spec["seed"])
    raw = random_weights(args, rng, spec["embed_std"])
    weights = {k: round_to_dtype(v, spec["weights_dtype"]) for k, v in raw.items()}
    spec["_unrounded"] = raw
    ids, mask, loss_mask, position_ids = make_inputs(spec, rng, args.vocab_size)

    logits, hidden_states = forward(args, weights, ids, mask, position_ids)
    record = golden_record(spec, args, ids, mask, loss_mask, position_ids, logits, hidden_states)

    d = os.path.join(out_dir, spec["name"])
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(hf_config_json(cfg, spec["weights_dtype"]))
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        f.write(generation_config_json(cfg))
    save_safetensors(os.path.join(d, "model.safetensors"), raw, spec["weights_dtype"])
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(record, f, indent=1)

    # Round-trip: what the TS side will read must reproduce the golden bit for bit.
    reread = load_safetensors(os.path.join(d, "model.safetensors"))
    assert set(reread) == set(weights), f"{spec['name']}: tensor names changed on disk"
    assert all(np.array_equal(reread[k], weights[k]) for k in weights), f"{spec['name']}: weights changed on disk"
    assert ("lm_head.weight" in read_header(os.path.join(d, "model.safetensors"))) != args.tie_word_embeddings
    relogits, _ = forward(ModelArgs.from_config(json.load(open(os.path.join(d, "config.json")))), reread, ids, mask, position_ids)
    assert torch.equal(relogits, logits), f"{spec['name']}: files do not reproduce the golden"

    checks = fixture_checks(spec, args, weights, ids, mask, position_ids, logits)
    real = logits[mask.bool()]
    resp_identity = -sum(record["dpo_logps"]["logps_sum"]) / sum(record["dpo_logps"]["n_tokens"])
    checks["lm_loss_response_identity_diff"] = abs(resp_identity - record["lm_loss_response"])
    checks["logits_std"] = float(real.std())
    print(f"  {spec['name']}: " + ", ".join(f"{k} {v:.3g}" for k, v in checks.items()))
    assert checks["naive_float64_max_diff"] < 1e-4, "float64 cross-check failed"
    assert checks["padded_vs_unpadded_max_diff"] < 1e-4, "padding changes real-token logits"
    assert checks["lm_loss_response_identity_diff"] < 1e-4
    return checks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    ap.add_argument("--hf-golden", default=DEFAULT_HF_GOLDEN, help="real-transformers goldens to verify against first")
    ap.add_argument("--only", nargs="*", help="fixture names to build (default: all)")
    a = ap.parse_args()
    torch.set_num_threads(1)

    if os.path.isdir(a.hf_golden):
        print(f"verifying the reference against {a.hf_golden}")
        verify_against_hf_golden(a.hf_golden)
    else:
        print(f"warning: {a.hf_golden} not found; skipping the check against real transformers output")

    print(f"writing fixtures to {a.out}")
    os.makedirs(a.out, exist_ok=True)
    for spec in FIXTURES:
        if a.only and spec["name"] not in a.only:
            continue
        build_fixture(dict(spec), a.out)


if __name__ == "__main__":
    main()
