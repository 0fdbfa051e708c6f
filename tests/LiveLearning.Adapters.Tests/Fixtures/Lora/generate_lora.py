#!/usr/bin/env python3
"""LoRA fixtures beyond the plain adapters of ../Models/generate.py, computed with plain PyTorch (1.13, CPU):

  rslora-patterns/  a PEFT adapter for ../Models/llama-gqa-tied with use_rslora, rank_pattern, alpha_pattern and a
                    regex target_modules, plus expected.json (logits, loss, gradients). PEFT's rules as specified:
                    * target_modules as a string: re.fullmatch(target_modules, module_path);
                    * pattern keys: an exact module path wins, else the first key (sorted order, as read from the
                      sorted JSON) such that re.match(r"(.*\\.)?(KEY)$", module_path);
                    * scaling = alpha_m / sqrt(r_m) with use_rslora (alpha_m / r_m otherwise).
  tiny-golden/      a one-module adapter written the way PEFT's save_pretrained writes it (json.dumps(indent=2,
                    sort_keys=True), safetensors with {"format": "pt"} metadata) by the independent writer in
                    ../Models/generate.py: the byte-exact golden for the exporter.

Run from this folder:  python3 generate_lora.py
"""

import json
import math
import os
import re
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Models"))
import generate as g  # noqa: E402

torch.set_num_threads(1)

TARGETS = r".*\.(q_proj|v_proj|o_proj|up_proj|down_proj)"
R = 4
ALPHA = 8
RANK_PATTERN = {"model.layers.1.mlp.down_proj": 6, "q_proj": 2}
ALPHA_PATTERN = {"self_attn.o_proj": 12, "v_proj": 3}


def pattern_value(patterns, path, default):
    keys = sorted(patterns)
    if path in patterns:
        return patterns[path]
    for k in keys:
        if re.match(r"(.*\.)?(%s)$" % k, path):
            return patterns[k]
    return default


class PerModuleReference(g.Reference):
    def __init__(self, cfg, W, lora, scales):
        super().__init__(cfg, W, lora, 0.0)
        self.scales = scales

    def linear(self, x, module):
        y = x @ self.W[module + ".weight"].T
        bias = self.W.get(module + ".bias")
        if bias is not None:
            y = y + bias
        if module in self.lora:
            a, b = self.lora[module]
            y = y + self.scales[module] * ((x @ a.T) @ b.T)
        return y


def rslora_patterns():
    m = next(x for x in g.MODELS if x["name"] == "llama-gqa-tied")
    rc = g.ref_config(m)
    model_dir = os.path.join(HERE, "..", "Models", m["name"])
    W = g.read_safetensors_f32(os.path.join(model_dir, "model.safetensors"))
    with open(os.path.join(model_dir, "expected.json")) as f:
        ids = json.load(f)["input_ids"][0]
    torch.manual_seed(4242)
    shapes = g.module_shapes(m, rc)
    lora, scales, info = {}, {}, {}
    for layer in range(m["num_hidden_layers"]):
        for t in g.LORA_TARGETS:
            path = g.module_path(layer, t)
            if not re.fullmatch(TARGETS, path):
                continue
            r = pattern_value(RANK_PATTERN, path, R)
            alpha = pattern_value(ALPHA_PATTERN, path, ALPHA)
            fan_in, fan_out = shapes[t]
            bound = 1.0 / math.sqrt(fan_in)
            a = (torch.rand(r, fan_in) * 2 - 1) * bound
            b = torch.randn(fan_out, r) * 0.05
            lora[path] = (a, b)
            scales[path] = alpha / math.sqrt(r)
            info[path] = {"r": r, "alpha": alpha, "scale": scales[path]}

    out = os.path.join(HERE, "rslora-patterns")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    config = {
        "alpha_pattern": ALPHA_PATTERN, "base_model_name_or_path": m["name"], "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "lora_alpha": ALPHA,
        "lora_dropout": 0.0, "modules_to_save": None, "peft_type": "LORA", "r": R, "rank_pattern": RANK_PATTERN,
        "revision": None, "target_modules": TARGETS, "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": True,
    }
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True))
    tensors = {}
    for mod, (a, b) in lora.items():
        tensors["base_model.model.%s.lora_A.weight" % mod] = (a, "F32")
        tensors["base_model.model.%s.lora_B.weight" % mod] = (b, "F32")
    g.write_safetensors(os.path.join(out, "adapter_model.safetensors"), tensors, {"format": "pt"})

    labels = list(ids)
    for pos in g.IGNORE_LABEL_POSITIONS:
        labels[pos] = -100

    def run(dtype):
        Wd = {k: v.to(dtype) for k, v in W.items()}
        params = {k: (a.to(dtype).clone().requires_grad_(True), b.to(dtype).clone().requires_grad_(True))
                  for k, (a, b) in lora.items()}
        logits = PerModuleReference(rc, Wd, params, scales).full(ids)
        loss = g.causal_lm_loss(logits, labels)
        loss.backward()
        grads = {}
        for k, (a, b) in params.items():
            grads["base_model.model.%s.lora_A.weight" % k] = a.grad.detach().clone()
            grads["base_model.model.%s.lora_B.weight" % k] = b.grad.detach().clone()
        return logits.detach(), loss.detach(), grads

    logits, loss, grads = run(torch.float32)
    _, loss64, grads64 = run(torch.float64)
    assert abs(float(loss) - float(loss64)) < 1e-5
    for k in grads:
        assert float((grads[k].double() - grads64[k]).abs().max()) <= 1e-4 * float(grads64[k].abs().max()) + 1e-9, k
    base = g.Reference(rc, W).full(ids)
    assert float((logits - base).abs().max()) > 0.05
    expected = {
        "model": m["name"], "input_ids": ids, "labels": labels, "modules": info,
        "logits_with_adapter": g.rows(logits), "loss": g.r7(float(loss)),
        "gradients": {k: [g.r7(v) for v in t.reshape(-1).tolist()] for k, t in sorted(grads.items())},
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
        f.write("\n")
    print("rslora-patterns: %d modules, loss %.5f" % (len(lora), float(loss)))


def tiny_golden():
    out = os.path.join(HERE, "tiny-golden")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    config = {
        "base_model_name_or_path": "tiny", "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
        "init_lora_weights": True, "lora_alpha": 2, "lora_dropout": 0.0, "modules_to_save": None,
        "peft_type": "LORA", "r": 1, "revision": None, "target_modules": ["q_proj"], "task_type": "CAUSAL_LM",
        "use_dora": False, "use_rslora": False,
    }
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True))
    a = torch.tensor([[0.5, -1.0]])
    b = torch.tensor([[1.0], [2.0], [-0.25]])
    g.write_safetensors(os.path.join(out, "adapter_model.safetensors"),
                        {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": (a, "F32"),
                         "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": (b, "F32")},
                        {"format": "pt"})
    print("tiny-golden written")


if __name__ == "__main__":
    rslora_patterns()
    tiny_golden()
