"""For weights/convert_test.go: from CLIP weights with OpenAI names (a
safetensors file), writes the layouts users bring: an OpenAI-style TorchScript
archive with its non-tensor extras, a torch.save state dict nested under
"state_dict", and Hugging Face checkpoints (model.safetensors and
pytorch_model.bin) with q/k/v split and projections transposed."""
import os
import re
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
import convert_clip  # noqa: E402  (its safetensors reader and writer)

src, out = sys.argv[1], sys.argv[2]
sd = convert_clip.read_safetensors(src)


class Node(nn.Module):
    def forward(self, x):
        return x


root = Node()
for name, value in sd.items():
    parts = name.split(".")
    m = root
    for p in parts[:-1]:
        if not hasattr(m, p):
            m.add_module(p, Node())
        m = getattr(m, p)
    m.register_parameter(parts[-1], nn.Parameter(value.clone(), requires_grad=False))
for extra, v in (("input_resolution", 56), ("context_length", 77), ("vocab_size", 49408)):
    root.register_buffer(extra, torch.tensor(v))
torch.jit.script(root).save(os.path.join(out, "openai.pt"))
# (A one-entry dict pickles with SETITEM, which libtorch 1.13 cannot read.)
torch.save({"state_dict": sd, "epoch": 32}, os.path.join(out, "state_dict.pt"))

hf = {}
inv = {v: k for k, v in convert_clip.HF_FIXED.items()}
for name, v in sd.items():
    if name in inv:
        hf[inv[name]] = v
    elif name == "text_projection":
        hf["text_projection.weight"] = v.t().contiguous()
    elif name == "visual.proj":
        hf["visual_projection.weight"] = v.t().contiguous()
    else:
        m = re.match(r"^(visual\.)?transformer\.resblocks\.(\d+)\.(.+)$", name)
        prefix = ("vision_model" if m.group(1) else "text_model") + f".encoder.layers.{m.group(2)}."
        rest = m.group(3)
        if rest.startswith("attn.in_proj_"):
            kind = rest[len("attn.in_proj_"):]
            for part, chunk in zip("qkv", v.chunk(3, 0)):
                hf[prefix + f"self_attn.{part}_proj.{kind}"] = chunk.contiguous()
            continue
        for a, b in convert_clip.HF_PARTS.items():
            if rest.startswith(b):
                hf[prefix + a + rest[len(b):]] = v
                break
hf["text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
convert_clip.write_safetensors(os.path.join(out, "model.safetensors"), hf, {"format": "pt"})
torch.save(hf, os.path.join(out, "pytorch_model.bin"))
