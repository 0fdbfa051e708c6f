# Independent oracle for ModelConfigTests: RoPE inverse frequencies as described by Hugging Face
# modeling_rope_utils (_compute_default_rope_parameters, _compute_dynamic_ntk_parameters,
# _compute_llama3_parameters), written from the formulas in plain Python doubles and rounded once to float32.
# Run: python3 rope_golden.py   (prints the arrays pasted into ModelConfigTests.cs)
import math
import struct


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def default(theta, dim):
    return [1.0 / theta ** (k / dim) for k in range(0, dim, 2)]


def llama3(theta, dim, factor, low, high, old_len):
    low_wavelen = old_len / low
    high_wavelen = old_len / high
    out = []
    for f in default(theta, dim):
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(f)
        elif wavelen > low_wavelen:
            out.append(f / factor)
        else:
            smooth = (old_len / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return out


def dynamic(theta, dim, factor, max_pos, seq_len):
    seq_len = max(seq_len, max_pos)
    base = theta * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2))
    return default(base, dim)


def show(name, values):
    print(name + " = [" + ", ".join(repr(f32(v)) + "f" for v in values) + "];")


# Llama 3.2 1B: head_dim 64, rope_theta 500000, llama3 factor 32, low 1, high 4, original 8192.
show("Llama32", llama3(500000.0, 64, 32.0, 1.0, 4.0, 8192))
# Dynamic NTK: head_dim 16, theta 10000, factor 2, max_position_embeddings 2048, sequence length 5000.
show("Dynamic", dynamic(10000.0, 16, 2.0, 2048, 5000))
