"""Minimal safetensors reader/writer (no `safetensors` package on this machine).

Layout: u64 little-endian header length N, N bytes of JSON header (padded with
spaces to a multiple of 8, as the Rust implementation does), then the raw
little-endian tensor bytes. Tensors are laid out in sorted-name order, which is
what `safetensors.torch.save_file` produces when every tensor has the same dtype.
"""

import json
import struct

import numpy as np
import torch

ST_DTYPES = ("F32", "F16", "BF16")


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round-to-nearest-even; NaN stays NaN."""
    u = np.ascontiguousarray(x, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = np.isnan(x)
    out = rounded.astype(np.uint16)
    out[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return out


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype("<u4") << 16).view("<f4")


def round_to_dtype(x: np.ndarray, st_dtype: str) -> np.ndarray:
    """The float32 values a checkpoint stored as `st_dtype` holds once upcast to float32."""
    x = np.asarray(x, dtype=np.float32)
    if st_dtype == "F32":
        return x.copy()
    if st_dtype == "F16":
        return x.astype("<f2").astype(np.float32)
    if st_dtype == "BF16":
        ours = bf16_bits_to_f32(bf16_bits(x))
        # Cross-check against torch's own float32 -> bfloat16 cast.
        theirs = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
        assert np.array_equal(ours.view("<u4"), theirs.view("<u4")), "bf16 rounding mismatch vs torch"
        return ours
    raise ValueError(f"unsupported safetensors dtype {st_dtype}")


def _to_bytes(x: np.ndarray, st_dtype: str) -> bytes:
    x = np.asarray(x, dtype=np.float32)
    if st_dtype == "F32":
        return np.ascontiguousarray(x, dtype="<f4").tobytes()
    if st_dtype == "F16":
        return np.ascontiguousarray(x.astype("<f2")).tobytes()
    if st_dtype == "BF16":
        return np.ascontiguousarray(bf16_bits(x).astype("<u2")).tobytes()
    raise ValueError(f"unsupported safetensors dtype {st_dtype}")


def save_safetensors(path: str, tensors: dict, st_dtype: str, metadata=None) -> None:
    """Write float32 numpy arrays as `st_dtype` (F32, F16 or BF16)."""
    header = {"__metadata__": metadata or {"format": "pt"}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        data = _to_bytes(tensors[name], st_dtype)
        header[name] = {
            "dtype": st_dtype,
            "shape": list(np.shape(tensors[name])),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for blob in blobs:
            f.write(blob)


def load_safetensors(path: str) -> dict:
    """Read every tensor as a float32 numpy array (BF16/F16 upcast exactly)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        buf = raw[base + start : base + end]
        dtype = info["dtype"]
        if dtype == "F32":
            arr = np.frombuffer(buf, dtype="<f4")
        elif dtype == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        elif dtype == "BF16":
            arr = bf16_bits_to_f32(np.frombuffer(buf, dtype="<u2"))
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        out[name] = arr.reshape(info["shape"]).astype(np.float32)
    return out


def read_header(path: str) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))
