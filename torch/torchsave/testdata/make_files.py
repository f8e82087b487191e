"""Writes torch.save files for torch/torchsave's tests: state dicts as
modules return them (OrderedDicts with _metadata), nested dicts, views that
share or skip parts of their storage, every dtype, Parameters, pickle
protocol 4, and a hostile pickle that would run a command.

    make_files.py DIR"""
import io
import os
import pickle
import sys
import zipfile

import torch
import torch.nn as nn

d = sys.argv[1]
torch.manual_seed(0)
lin = nn.Sequential(nn.Linear(3, 2), nn.LeakyReLU())
torch.save({"adapters": lin.state_dict(), "other": nn.ModuleList([nn.Linear(2, 2, bias=False)]).state_dict()}, f"{d}/state.pth")

base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
torch.save({
    "t": base.t(),                 # non-contiguous
    "slice": base[1:3, 2:5],       # offset and strides into a shared storage
    "row": base[2],
    "f16": torch.tensor([1.5, -2.25], dtype=torch.float16),
    "bf16": torch.tensor([3.0, 0.5], dtype=torch.bfloat16),
    "f64": torch.tensor([[1e-300]], dtype=torch.float64),
    "i64": torch.tensor([-7, 2**40]),
    "i32": torch.tensor([5], dtype=torch.int32),
    "u8": torch.tensor([255], dtype=torch.uint8),
    "b": torch.tensor([True, False]),
    "empty": torch.zeros(0, 3),
    "scalar": torch.tensor(2.5),
    "param": nn.Parameter(torch.ones(2)),
    "meta": {"epoch": 3, "name": "x", "lr": 0.001, "list": [1, 2], "none": None},
}, f"{d}/kinds.pth")
torch.save({"w": base}, f"{d}/proto4.pth", pickle_protocol=4)
torch.save({"a": {5: torch.ones(1), "b": torch.zeros(1)}, 7: torch.ones(2)}, f"{d}/intkeys.pth")


class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + d + "/pwned",))


buf = io.BytesIO()
pickle.dump({"w": Evil()}, buf, protocol=2)
with zipfile.ZipFile(f"{d}/evil.pth", "w") as z:
    z.writestr("archive/data.pkl", buf.getvalue())
    z.writestr("archive/version", "3\n")

# A dict that holds itself.
cyc = {}
cyc["self"] = cyc
buf = io.BytesIO()
pickle.dump(cyc, buf, protocol=2)
with zipfile.ZipFile(f"{d}/cycle.pth", "w") as z:
    z.writestr("archive/data.pkl", buf.getvalue())

# One stored float expanded to 2**40 elements: a view with more elements
# than its storage.
torch.save({"w": torch.zeros(1).expand(2**40)}, f"{d}/expanded.pth")
