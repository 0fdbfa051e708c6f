#!/usr/bin/env python3
"""Generates tiny Llama-family checkpoints in the Hugging Face on-disk formats, PEFT LoRA adapters for
them, and independent reference values (expected.json) computed with plain PyTorch.

Run from this folder with a Python that has PyTorch (tested with 1.13, CPU):

    python3 generate.py

Everything is deterministic (one torch.manual_seed per model). No safetensors / transformers packages are
needed: the safetensors writer and the reference decoder below are written from the format and math specs:
  * safetensors: u64 little-endian header length N, JSON header (dtype, shape, data_offsets relative to the
    data buffer, optional string->string "__metadata__"), header space-padded so N % 8 == 0, then packed
    little-endian row-major data with no holes.
  * decoder: pre-norm Llama block (RMSNorm in float32 without "1 +", grouped-query attention where query
    head j reads kv head j // (H / Hkv), Hugging Face rotate_half RoPE with the pairs (i, i + d/2), causal
    mask, float32 softmax, SwiGLU MLP), optional Qwen2 q/k/v biases, tied or untied lm_head, llama3 RoPE
    frequency scaling.
  * LoRA: y = x W^T (+ b) + scale * (x A^T) B^T with A [r, in], B [out, r], scale = lora_alpha / r.
"""

import json
import math
import os
import shutil
import sys

import torch

torch.set_num_threads(1)  # reproducible reductions
assert sys.byteorder == "little", "the safetensors writer below assumes a little-endian host"

HERE = os.path.dirname(os.path.abspath(__file__))

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_R = 4
LORA_ALPHA = 8
IGNORE_LABEL_POSITIONS = [0, 1, 2, 6]  # indices into the UNSHIFTED labels (aligned with input_ids)
DECODE_STEPS = 4
GENERATE_TOKENS = 8


# --------------------------------------------------------------------------------------------------
# safetensors writer
# --------------------------------------------------------------------------------------------------

def tensor_bytes(t, dtype):
    """Raw little-endian bytes of tensor t stored as dtype ('F32', 'F16', 'BF16')."""
    t = t.detach().contiguous()
    if dtype == "F32":
        return t.to(torch.float32).numpy().tobytes()
    if dtype == "F16":
        return t.to(torch.float16).numpy().tobytes()
    if dtype == "BF16":
        # torch's float32 -> bfloat16 conversion rounds to nearest even; reinterpret the 16 bits.
        return t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
    raise ValueError("unsupported dtype " + dtype)


ELEMENT_SIZE = {"F32": 4, "F16": 2, "BF16": 2}


def write_safetensors(path, tensors, metadata):
    """tensors: dict name -> (torch tensor, dtype string). Keys are written sorted; data in the same order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t, dtype = tensors[name]
        data = tensor_bytes(t, dtype)
        assert len(data) == t.numel() * ELEMENT_SIZE[dtype]
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)
    return offset  # total tensor bytes


def read_safetensors_f32(path):
    """Minimal reader used only to check that what was written reads back bit-exactly."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    out = {}
    end = 0
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        chunk = bytearray(raw[8 + n + b:8 + n + en])
        if e["dtype"] == "F32":
            t = torch.frombuffer(chunk, dtype=torch.float32)
        elif e["dtype"] == "F16":
            t = torch.frombuffer(chunk, dtype=torch.float16).to(torch.float32)
        else:
            bits = torch.frombuffer(chunk, dtype=torch.int16).to(torch.int32) & 0xFFFF
            t = (bits << 16).view(torch.float32)
        out[name] = t.reshape(e["shape"]).clone()
        end = max(end, en)
    assert 8 + n + end == len(raw), "trailing bytes or hole in " + path
    return out


# --------------------------------------------------------------------------------------------------
# reference decoder
# --------------------------------------------------------------------------------------------------

def inv_freq_for(cfg):
    """RoPE inverse frequencies (float32) including the llama3 rope_scaling rule."""
    d = cfg["head_dim"]
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.int64).to(torch.float32) / d))
    rs = cfg.get("rope_scaling")
    if rs is None:
        return inv
    assert rs["rope_type"] == "llama3"
    factor = rs["factor"]
    lo = rs["low_freq_factor"]
    hi = rs["high_freq_factor"]
    l0 = rs["original_max_position_embeddings"]
    low_wavelen = l0 / lo
    high_wavelen = l0 / hi
    out = inv.clone()
    for i in range(inv.numel()):
        f = inv[i]
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out[i] = f
        elif wavelen > low_wavelen:
            out[i] = f / factor
        else:
            s = (l0 / wavelen - lo) / (hi - lo)
            out[i] = (1 - s) * f / factor + s * f
    return out


def rope_regions(cfg):
    """Which llama3 region each frequency index falls in (for the README / sanity checks)."""
    d = cfg["head_dim"]
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, d, 2).to(torch.float32) / d))
    rs = cfg["rope_scaling"]
    l0 = rs["original_max_position_embeddings"]
    regions = []
    for f in inv.tolist():
        w = 2 * math.pi / f
        regions.append("keep" if w < l0 / rs["high_freq_factor"] else ("divide" if w > l0 / rs["low_freq_factor"] else "smooth"))
    return regions


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class KVCache:
    def __init__(self, layers):
        self.k = [None] * layers  # [Hkv, t, d], post-RoPE
        self.v = [None] * layers
        self.length = 0


class Reference:
    """Plain Llama-family decoder. W maps HF tensor names to tensors (float32 or float64).
    lora maps module path (e.g. 'model.layers.0.self_attn.q_proj') -> (A [r,in], B [out,r])."""

    def __init__(self, cfg, W, lora=None, scale=0.0):
        self.cfg = cfg
        self.W = W
        self.lora = lora or {}
        self.scale = scale
        dtype = W["model.embed_tokens.weight"].dtype
        self.inv_freq = inv_freq_for(cfg).to(dtype)

    def linear(self, x, module):
        y = x @ self.W[module + ".weight"].T
        bias = self.W.get(module + ".bias")
        if bias is not None:
            y = y + bias
        if module in self.lora:
            a, b = self.lora[module]
            y = y + self.scale * ((x @ a.T) @ b.T)
        return y

    def rms_norm(self, x, weight):
        r = torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + self.cfg["rms_norm_eps"])
        return weight * (x * r)

    def rope(self, x, positions):
        # x: [T, heads, d]; positions: [T] absolute
        angle = positions.to(x.dtype)[:, None] * self.inv_freq[None, :]  # [T, d/2]
        cos = torch.cat((angle.cos(), angle.cos()), dim=-1)[:, None, :]
        sin = torch.cat((angle.sin(), angle.sin()), dim=-1)[:, None, :]
        return x * cos + rotate_half(x) * sin

    def attention(self, h, layer, positions, cache):
        cfg = self.cfg
        H, Hkv, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
        T = h.shape[0]
        p = "model.layers.%d.self_attn." % layer
        q = self.linear(h, p + "q_proj").reshape(T, H, d)
        k = self.linear(h, p + "k_proj").reshape(T, Hkv, d)
        v = self.linear(h, p + "v_proj").reshape(T, Hkv, d)
        q = self.rope(q, positions)
        k = self.rope(k, positions)
        k = k.permute(1, 0, 2)  # [Hkv, T, d]
        v = v.permute(1, 0, 2)
        if cache.k[layer] is not None:
            k = torch.cat((cache.k[layer], k), dim=1)
            v = torch.cat((cache.v[layer], v), dim=1)
        cache.k[layer] = k
        cache.v[layer] = v
        S_len = k.shape[1]
        key_pos = torch.arange(S_len)
        masked = key_pos[None, :] > positions[:, None]  # [T, S]: key after query -> masked
        group = H // Hkv
        scale = 1.0 / math.sqrt(d)
        outs = []
        for j in range(H):
            g = j // group
            s = (q[:, j, :] @ k[g].T) * scale
            s = s.masked_fill(masked, float("-inf"))
            pr = torch.softmax(s, dim=-1)
            outs.append(pr @ v[g])
        o = torch.cat(outs, dim=-1)  # [T, H*d], head j in columns j*d .. j*d+d-1
        return self.linear(o, p + "o_proj")

    def mlp(self, h, layer):
        p = "model.layers.%d.mlp." % layer
        g = self.linear(h, p + "gate_proj")
        u = self.linear(h, p + "up_proj")
        return self.linear(g * torch.sigmoid(g) * u, p + "down_proj")

    def forward(self, ids, cache):
        """Runs ids (list of ints) starting at absolute position cache.length; returns logits [T, vocab]."""
        cfg = self.cfg
        T = len(ids)
        positions = torch.arange(cache.length, cache.length + T)
        x = self.W["model.embed_tokens.weight"][torch.tensor(ids)]
        for layer in range(cfg["num_hidden_layers"]):
            pl = "model.layers.%d." % layer
            x = x + self.attention(self.rms_norm(x, self.W[pl + "input_layernorm.weight"]), layer, positions, cache)
            x = x + self.mlp(self.rms_norm(x, self.W[pl + "post_attention_layernorm.weight"]), layer)
        cache.length += T
        x = self.rms_norm(x, self.W["model.norm.weight"])
        head = self.W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else self.W["lm_head.weight"]
        return x @ head.T

    def full(self, ids):
        return self.forward(ids, KVCache(self.cfg["num_hidden_layers"]))


def causal_lm_loss(logits, labels):
    """Hugging Face causal-LM loss: logits[t] predicts labels[t+1]; label -100 ignored; mean over counted."""
    z = logits[:-1]
    y = torch.tensor(labels[1:])
    keep = y != -100
    logp = z - torch.logsumexp(z, dim=-1, keepdim=True)
    picked = logp[torch.arange(z.shape[0])[keep], y[keep]]
    return -picked.sum() / keep.sum()


# --------------------------------------------------------------------------------------------------
# model definitions
# --------------------------------------------------------------------------------------------------

BASE = dict(
    model_type="llama",
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    explicit_head_dim=None,
    vocab_size=256,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    rope_scaling=None,
    max_position_embeddings=256,
    tie_word_embeddings=True,
    qkv_bias=False,
    storage="F32",
    shards=1,
    seq_lengths=(11, 7),
    lora_sequence=0,
)

MODELS = [
    dict(BASE, name="llama-gqa-tied", seed=1002,
         exercises="Llama, GQA 4 query heads / 2 kv heads, tied embeddings (no lm_head tensor), F32."),
    dict(BASE, name="qwen2-bias", seed=1003, model_type="qwen2", qkv_bias=True, tie_word_embeddings=False,
         rope_theta=1000000.0, rms_norm_eps=1e-6,
         exercises="Qwen2: nonzero q/k/v biases (no o_proj bias), untied lm_head, rope_theta 1e6, eps 1e-6, "
                   "use_sliding_window false (sliding_window key present but must be ignored)."),
    dict(BASE, name="llama3-rope", seed=1016, num_key_value_heads=1, explicit_head_dim=32, rope_theta=500000.0,
         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 64},
         max_position_embeddings=512, seq_lengths=(80, 9), lora_sequence=1,
         exercises="llama3 rope_scaling (all three frequency regions: kept, smoothed, divided by factor), "
                   "positions up to 79 > original_max_position_embeddings 64, explicit head_dim 32 with "
                   "hidden 64 and 4 heads (q_proj out 128 != hidden), 4 query heads sharing 1 kv head, "
                   "rope_theta 500000, tied embeddings, F32."),
    dict(BASE, name="llama-sharded", seed=1004, tie_word_embeddings=False, shards=3,
         exercises="Like llama-gqa-tied but untied lm_head and split into 3 safetensors shards with "
                   "model.safetensors.index.json (weight_map + metadata.total_size); no model.safetensors."),
    dict(BASE, name="llama-bf16", seed=1005, storage="BF16",
         exercises="Like llama-gqa-tied with every tensor stored BF16 (torch_dtype bfloat16). Expected values "
                   "are float32 math on the BF16-rounded weights."),
    dict(BASE, name="llama-f16", seed=1006, storage="F16",
         exercises="Like llama-gqa-tied with every tensor stored F16 (torch_dtype float16). Expected values "
                   "are float32 math on the F16-rounded weights."),
    dict(BASE, name="mistral-basic", seed=1007, model_type="mistral", num_key_value_heads=4,
         tie_word_embeddings=False,
         exercises="Mistral with sliding_window null (full causal attention), plain multi-head attention "
                   "(num_key_value_heads == num_attention_heads), untied lm_head, F32."),
]

TORCH_DTYPE_NAME = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}
ARCH = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}


def hf_config(m):
    cfg = {
        "architectures": [ARCH[m["model_type"]]],
        "model_type": m["model_type"],
        "hidden_size": m["hidden_size"],
        "intermediate_size": m["intermediate_size"],
        "num_hidden_layers": m["num_hidden_layers"],
        "num_attention_heads": m["num_attention_heads"],
        "num_key_value_heads": m["num_key_value_heads"],
    }
    if m["explicit_head_dim"] is not None:
        cfg["head_dim"] = m["explicit_head_dim"]
    cfg.update({
        "hidden_act": "silu",
        "rms_norm_eps": m["rms_norm_eps"],
        "rope_theta": m["rope_theta"],
        "rope_scaling": m["rope_scaling"],
        "max_position_embeddings": m["max_position_embeddings"],
        "tie_word_embeddings": m["tie_word_embeddings"],
        "vocab_size": m["vocab_size"],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "initializer_range": 0.02,
        "use_cache": True,
        "attention_dropout": 0.0,
        "torch_dtype": TORCH_DTYPE_NAME[m["storage"]],
    })
    if m["model_type"] == "llama":
        cfg["attention_bias"] = False
        cfg["mlp_bias"] = False
        cfg["pretraining_tp"] = 1
    elif m["model_type"] == "qwen2":
        cfg["use_sliding_window"] = False
        cfg["sliding_window"] = 4096
        cfg["max_window_layers"] = m["num_hidden_layers"]
    elif m["model_type"] == "mistral":
        cfg["sliding_window"] = None
    return cfg


def ref_config(m):
    return {
        "num_hidden_layers": m["num_hidden_layers"],
        "num_attention_heads": m["num_attention_heads"],
        "num_key_value_heads": m["num_key_value_heads"],
        "head_dim": m["explicit_head_dim"] or m["hidden_size"] // m["num_attention_heads"],
        "rms_norm_eps": m["rms_norm_eps"],
        "rope_theta": m["rope_theta"],
        "rope_scaling": m["rope_scaling"],
        "tie_word_embeddings": m["tie_word_embeddings"],
    }


def make_weights(m, rc):
    """Random weights in module order (float32, before storage rounding)."""
    C, I, V = m["hidden_size"], m["intermediate_size"], m["vocab_size"]
    H, Hkv, d = rc["num_attention_heads"], rc["num_key_value_heads"], rc["head_dim"]
    std = 0.08

    def normal(*shape):
        return torch.randn(*shape) * std

    def norm_weight():
        return 1.0 + torch.randn(C) * 0.1

    W = {"model.embed_tokens.weight": normal(V, C)}
    for i in range(m["num_hidden_layers"]):
        p = "model.layers.%d." % i
        W[p + "input_layernorm.weight"] = norm_weight()
        W[p + "self_attn.q_proj.weight"] = normal(H * d, C)
        W[p + "self_attn.k_proj.weight"] = normal(Hkv * d, C)
        W[p + "self_attn.v_proj.weight"] = normal(Hkv * d, C)
        if m["qkv_bias"]:
            W[p + "self_attn.q_proj.bias"] = torch.randn(H * d) * 0.1
            W[p + "self_attn.k_proj.bias"] = torch.randn(Hkv * d) * 0.1
            W[p + "self_attn.v_proj.bias"] = torch.randn(Hkv * d) * 0.1
        W[p + "self_attn.o_proj.weight"] = normal(C, H * d)
        W[p + "post_attention_layernorm.weight"] = norm_weight()
        W[p + "mlp.gate_proj.weight"] = normal(I, C)
        W[p + "mlp.up_proj.weight"] = normal(I, C)
        W[p + "mlp.down_proj.weight"] = normal(C, I)
    W["model.norm.weight"] = norm_weight()
    if not m["tie_word_embeddings"]:
        W["lm_head.weight"] = normal(V, C)
    return W


def storage_round(t, storage):
    if storage == "F32":
        return t.clone()
    if storage == "BF16":
        return t.to(torch.bfloat16).to(torch.float32)
    return t.to(torch.float16).to(torch.float32)


def module_shapes(m, rc):
    C, I = m["hidden_size"], m["intermediate_size"]
    H, Hkv, d = rc["num_attention_heads"], rc["num_key_value_heads"], rc["head_dim"]
    # module -> (in, out)
    return {"q_proj": (C, H * d), "k_proj": (C, Hkv * d), "v_proj": (C, Hkv * d), "o_proj": (H * d, C),
            "gate_proj": (C, I), "up_proj": (C, I), "down_proj": (I, C)}


def module_path(layer, target):
    kind = "self_attn" if target in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
    return "model.layers.%d.%s.%s" % (layer, kind, target)


def make_lora(m, rc):
    shapes = module_shapes(m, rc)
    lora = {}
    for layer in range(m["num_hidden_layers"]):
        for t in LORA_TARGETS:
            fan_in, fan_out = shapes[t]
            bound = 1.0 / math.sqrt(fan_in)
            a = (torch.rand(LORA_R, fan_in) * 2 - 1) * bound
            b = torch.randn(fan_out, LORA_R) * 0.05
            lora[module_path(layer, t)] = (a, b)
    return lora


def r7(x):
    """Round to 7 significant digits, keeping a JSON number."""
    return float("%.7g" % x)


def rows(t):
    return [[r7(v) for v in row] for row in t.tolist()]


def vec(t):
    return [r7(v) for v in t.tolist()]


# --------------------------------------------------------------------------------------------------
# generation of one model directory
# --------------------------------------------------------------------------------------------------

def write_model_files(m, out_dir, W_raw):
    storage = m["storage"]
    tensors = {name: (t, storage) for name, t in W_raw.items()}
    meta = {"format": "pt"}
    if m["shards"] == 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors, meta)
        read_back = read_safetensors_f32(os.path.join(out_dir, "model.safetensors"))
    else:
        names = list(W_raw)  # module order
        total = sum(W_raw[n].numel() * ELEMENT_SIZE[storage] for n in names)
        k = m["shards"]
        groups = [[] for _ in range(k)]
        acc = 0
        for n in names:
            idx = min(k - 1, acc * k // total)
            groups[idx].append(n)
            acc += W_raw[n].numel() * ELEMENT_SIZE[storage]
        assert all(groups), "every shard must hold at least one tensor"
        weight_map = {}
        read_back = {}
        total_size = 0
        for i, g in enumerate(groups):
            fname = "model-%05d-of-%05d.safetensors" % (i + 1, k)
            total_size += write_safetensors(os.path.join(out_dir, fname), {n: tensors[n] for n in g}, meta)
            for n in g:
                weight_map[n] = fname
            read_back.update(read_safetensors_f32(os.path.join(out_dir, fname)))
        assert total_size == total
        index = {"metadata": {"total_size": total_size},
                 "weight_map": {n: weight_map[n] for n in sorted(weight_map)}}
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")
    # What the reference uses = exactly what a reader gets back from the file, widened to float32.
    assert set(read_back) == set(W_raw)
    for n, t in W_raw.items():
        assert torch.equal(read_back[n], storage_round(t, storage)), n
    return read_back


def write_adapter(m, out_dir, lora):
    adir = os.path.join(out_dir, "adapter")
    os.makedirs(adir, exist_ok=True)
    config = {
        "base_model_name_or_path": m["name"],
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "lora_alpha": LORA_ALPHA,
        "lora_dropout": 0.0,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": LORA_R,
        "revision": None,
        "target_modules": LORA_TARGETS,
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }
    with open(os.path.join(adir, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    tensors = {}
    for mod, (a, b) in lora.items():
        tensors["base_model.model.%s.lora_A.weight" % mod] = (a, "F32")
        tensors["base_model.model.%s.lora_B.weight" % mod] = (b, "F32")
    path = os.path.join(adir, "adapter_model.safetensors")
    write_safetensors(path, tensors, {"format": "pt"})
    back = read_safetensors_f32(path)
    for mod, (a, b) in lora.items():
        assert torch.equal(back["base_model.model.%s.lora_A.weight" % mod], a)
        assert torch.equal(back["base_model.model.%s.lora_B.weight" % mod], b)


def greedy_generate(ref, prompt, n):
    cache = KVCache(ref.cfg["num_hidden_layers"])
    logits = ref.forward(prompt, cache)[-1]
    tokens, margins = [], []
    for step in range(n):
        top2 = torch.topk(logits, 2).values
        margins.append(float(top2[0] - top2[1]))
        tok = int(torch.argmax(logits))
        tokens.append(tok)
        if step + 1 < n:
            logits = ref.forward([tok], cache)[-1]
    return tokens, margins


def lora_gradients(rc, W, lora, scale, ids, labels, dtype):
    Wd = {k: v.to(dtype) for k, v in W.items()}
    params = {mod: (a.to(dtype).clone().requires_grad_(True), b.to(dtype).clone().requires_grad_(True))
              for mod, (a, b) in lora.items()}
    ref = Reference(rc, Wd, params, scale)
    logits = ref.full(ids)
    loss = causal_lm_loss(logits, labels)
    loss.backward()
    grads = {}
    for mod, (a, b) in params.items():
        grads["base_model.model.%s.lora_A.weight" % mod] = a.grad.detach().clone()
        grads["base_model.model.%s.lora_B.weight" % mod] = b.grad.detach().clone()
    return logits.detach(), loss.detach(), grads


def finite_difference_check(rc, W, lora, scale, ids, labels, grads64):
    """Central differences in float64 on a few entries of a few LoRA matrices."""
    W64 = {k: v.double() for k, v in W.items()}
    checked = 0
    picks = [("model.layers.0.self_attn.q_proj", "A", (1, 3)), ("model.layers.0.self_attn.k_proj", "B", (5, 2)),
             ("model.layers.1.self_attn.v_proj", "A", (0, 7)), ("model.layers.1.mlp.down_proj", "B", (9, 1)),
             ("model.layers.0.mlp.gate_proj", "A", (3, 11)), ("model.layers.1.self_attn.o_proj", "B", (2, 0))]
    eps = 1e-6
    for mod, which, idx in picks:
        def loss_with(delta):
            l64 = {k: (a.double().clone(), b.double().clone()) for k, (a, b) in lora.items()}
            t = l64[mod][0 if which == "A" else 1]
            t[idx] += delta
            return float(causal_lm_loss(Reference(rc, W64, l64, scale).full(ids), labels))
        fd = (loss_with(eps) - loss_with(-eps)) / (2 * eps)
        g = float(grads64["base_model.model.%s.lora_%s.weight" % (mod, which)][idx])
        assert abs(fd - g) <= 1e-6 + 1e-5 * abs(g), (mod, which, idx, fd, g)
        checked += 1
    return checked


def check_rope_pairs(ref, rc):
    """rotate_half RoPE must equal the explicit pair formula on the pairs (i, i + d/2)."""
    d = rc["head_dim"]
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(5, 1, d, generator=gen)
    pos = torch.tensor([0, 1, 17, 63, 79])
    y = ref.rope(x, pos)
    h = d // 2
    for t in range(5):
        for i in range(h):
            a = float(pos[t]) * float(ref.inv_freq[i])
            y0 = float(x[t, 0, i]) * math.cos(a) - float(x[t, 0, i + h]) * math.sin(a)
            y1 = float(x[t, 0, i + h]) * math.cos(a) + float(x[t, 0, i]) * math.sin(a)
            assert abs(y0 - float(y[t, 0, i])) < 1e-4 and abs(y1 - float(y[t, 0, i + h])) < 1e-4


def check_gqa_by_duplication(rc, W, ids, logits):
    """A GQA model must equal the multi-head model whose kv heads are copied to each query head of a group."""
    H, Hkv, d = rc["num_attention_heads"], rc["num_key_value_heads"], rc["head_dim"]
    if H == Hkv:
        return
    group = H // Hkv
    W2 = dict(W)
    for layer in range(rc["num_hidden_layers"]):
        for proj in ("k_proj", "v_proj"):
            for suffix in ("weight", "bias"):
                key = "model.layers.%d.self_attn.%s.%s" % (layer, proj, suffix)
                if key in W:
                    t = W[key].reshape(Hkv, d, -1)
                    W2[key] = torch.cat([t[j // group] for j in range(H)], dim=0).reshape(H * d, *W[key].shape[1:])
    rc2 = dict(rc, num_key_value_heads=H)
    assert torch.allclose(Reference(rc2, W2).full(ids), logits, atol=1e-5, rtol=0)


def generate_model(m):
    name = m["name"]
    out_dir = os.path.join(HERE, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    torch.manual_seed(m["seed"])
    rc = ref_config(m)

    W_raw = make_weights(m, rc)
    lora = make_lora(m, rc)
    V = m["vocab_size"]
    input_ids = []
    for T in m["seq_lengths"]:
        input_ids.append([1] + torch.randint(3, V, (T - 1,)).tolist())

    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_config(m), f, indent=2)
        f.write("\n")
    W = write_model_files(m, out_dir, W_raw)
    write_adapter(m, out_dir, lora)

    ref = Reference(rc, W)
    scale = LORA_ALPHA / LORA_R

    # 1) full logits, each sequence independently from position 0
    full_logits = [ref.full(ids) for ids in input_ids]

    # 2) cached decode of sequence 0: prefill T-4 tokens, then one token at a time
    seq0 = input_ids[0]
    T0 = len(seq0)
    P = T0 - DECODE_STEPS
    cache = KVCache(rc["num_hidden_layers"])
    prefill = ref.forward(seq0[:P], cache)
    assert prefill.shape[0] == P
    steps = []
    for k in range(DECODE_STEPS):
        lg = ref.forward([seq0[P + k]], cache)
        assert lg.shape[0] == 1 and cache.length == P + k + 1
        steps.append(lg[0])
    decode_err = max(float((prefill[-1] - full_logits[0][P - 1]).abs().max()),
                     max(float((s - full_logits[0][P + k]).abs().max()) for k, s in enumerate(steps)))
    assert decode_err <= 1e-5, "cached decode differs from full forward by %g" % decode_err
    check_rope_pairs(ref, rc)
    check_gqa_by_duplication(rc, W, input_ids[1], full_logits[1])

    # 3) greedy generation with the cached decoder, cross-checked with full recomputation
    gen_tokens, margins = greedy_generate(ref, seq0, GENERATE_TOKENS)
    full_seq = seq0 + gen_tokens
    recomputed = ref.full(full_seq)
    for k, tok in enumerate(gen_tokens):
        assert int(torch.argmax(recomputed[T0 - 1 + k])) == tok
    assert min(margins) > 0.02, "greedy choice too close to call for a float32 test: %g" % min(margins)

    # 4) LoRA: zero-B adapter must be an exact no-op
    ls = m["lora_sequence"]
    lseq = input_ids[ls]
    zero_b = {mod: (a, torch.zeros_like(b)) for mod, (a, b) in lora.items()}
    assert torch.equal(Reference(rc, W, zero_b, scale).full(lseq), full_logits[ls]), "zero-B adapter changed logits"

    # 5) LoRA forward, loss and gradients (autograd through the frozen base)
    labels = list(lseq)
    for pos in IGNORE_LABEL_POSITIONS:
        labels[pos] = -100
    counted = [t for t in range(len(lseq) - 1) if labels[t + 1] != -100]
    logits_a, loss, grads = lora_gradients(rc, W, lora, scale, lseq, labels, torch.float32)
    diff_from_base = float((logits_a - full_logits[ls]).abs().max())
    assert diff_from_base > 0.05, "adapter barely changes the output (%g)" % diff_from_base
    _, loss64, grads64 = lora_gradients(rc, W, lora, scale, lseq, labels, torch.float64)
    assert abs(float(loss) - float(loss64)) < 1e-5
    grad_rel = max(float((grads[k].double() - grads64[k]).abs().max() / grads64[k].abs().max()) for k in grads)
    assert grad_rel < 1e-4, grad_rel
    n_fd = finite_difference_check(rc, W, lora, scale, lseq, labels, grads64)

    expected = {
        "model": name,
        "exercises": m["exercises"],
        "input_ids": input_ids,
        "logits": [rows(l) for l in full_logits],
        "decode": {
            "sequence": 0,
            "prefill_length": P,
            "prefill_last_logits": vec(prefill[-1]),
            "steps": [{"position": P + k, "token": seq0[P + k], "logits": vec(s)} for k, s in enumerate(steps)],
        },
        "generation": {
            "sequence": 0,
            "max_new_tokens": GENERATE_TOKENS,
            "tokens": gen_tokens,
            "min_top1_top2_margin": r7(min(margins)),
        },
        "lora": {
            "adapter_dir": "adapter",
            "r": LORA_R,
            "lora_alpha": LORA_ALPHA,
            "scale": scale,
            "sequence": ls,
            "logits_with_adapter": rows(logits_a),
            "ignore_label_positions": IGNORE_LABEL_POSITIONS,
            "labels": labels,
            "counted_logit_positions": counted,
            "loss": r7(float(loss)),
            "gradients": {k: {"shape": list(g.shape), "values": [r7(v) for v in g.reshape(-1).tolist()]}
                          for k, g in sorted(grads.items())},
        },
    }
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
        f.write("\n")

    size = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(out_dir) for fn in fns)
    extra = ""
    if m["rope_scaling"] is not None:
        extra = " rope regions " + ",".join(rope_regions(rc))
    print("%-15s %7d bytes  decode err %.2e  adapter max|dlogit| %.3f  loss %.5f  grad f32/f64 rel %.1e  "
          "fd checks %d  gen %s margin %.3g%s"
          % (name, size, decode_err, diff_from_base, float(loss), grad_rel, n_fd, gen_tokens, min(margins), extra))
    return size


def self_test_writer():
    """Golden bytes of the upstream safetensors tests, and BF16 round-to-nearest-even on exact ties."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "empty.safetensors")
        write_safetensors(p, {}, None)
        assert open(p, "rb").read() == b"\x08" + b"\x00" * 7 + b"{}" + b" " * 6
        p = os.path.join(tmp, "attn.safetensors")
        write_safetensors(p, {"attn.0": (torch.arange(6, dtype=torch.float32).reshape(1, 2, 3), "F32")}, None)
        raw = open(p, "rb").read()
        assert raw[:8] == (64).to_bytes(8, "little")
        assert raw[8:72] == b'{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'
        assert len(raw) == 72 + 24
    # 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even mantissa (1.0);
    # 1 + 3*2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties go to 1 + 2^-6.
    ties = torch.tensor([1 + 2 ** -8, 1 + 3 * 2 ** -8], dtype=torch.float32)
    bits = [int(b) & 0xFFFF for b in ties.to(torch.bfloat16).view(torch.int16).tolist()]
    assert bits == [0x3F80, 0x3F82], [hex(b) for b in bits]


def main():
    self_test_writer()
    total = 0
    for m in MODELS:
        total += generate_model(m)
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
