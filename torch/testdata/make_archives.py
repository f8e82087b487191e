"""Writes one small state dict three ways for torch/archive_test.go: a
TorchScript archive (as OpenAI ships CLIP), a torch.save pickle, and a pickle
with the state dict nested under "state_dict"."""
import sys

import torch
import torch.nn as nn

out = sys.argv[1]
sd = {"a.weight": torch.arange(6.0).reshape(3, 2), "a.b.bias": torch.arange(4.0).half(),
      "n.0.w": torch.ones(2, dtype=torch.float64)}
torch.save(sd, out + "/sd.pt")
torch.save({"state_dict": sd, "epoch": 3}, out + "/nested.pt")


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
    m.register_parameter(parts[-1], nn.Parameter(value, requires_grad=False))
root.register_buffer("input_resolution", torch.tensor(336))
torch.jit.script(root).save(out + "/ts.pt")
