"""The authors' checkpoint layout, rebuilt with nn modules as their code
declares them (CLIP/adapter_shared.py's adapters: fc1, fc2 and fc3, each a
Linear without bias followed by a LeakyReLU; Prompt/CoOp.py's PromptMaker:
a prompt_learner with a ParameterDict ctx of "{class}_{position}" contexts
[phrases, 8, width] and a text_encoder holding CLIP's transformer,
positional_embedding, ln_final and text_projection), for
authors/authors_test.go.

    authors_layout.py write CLIP.safetensors MADCLIP.safetensors LAYERS OUT.pth
        torch.save's the dict their train.py saves, from a madclip checkpoint.
    authors_layout.py check CLIP.safetensors MADCLIP.safetensors LAYERS IN.pth
        torch.load's IN.pth, loads it strictly into those modules, and checks
        every trained tensor against the madclip checkpoint."""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "model", "clip", "testdata"))
import reference_clip  # noqa: E402

POSITIONS = ["end", "front", "middle"]
CLASSES = ["normal", "abnormal"]


class ClipAdapter(nn.Module):
    def __init__(self, width, embed):
        super().__init__()
        self.fc1 = nn.Sequential(nn.Linear(width, width, bias=False), nn.LeakyReLU())
        self.fc2 = nn.Sequential(nn.Linear(width, embed, bias=False), nn.LeakyReLU())
        self.fc3 = nn.Sequential(nn.Linear(width, embed, bias=False), nn.LeakyReLU())


class TextEncoder(nn.Module):
    def __init__(self, clip_model):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection


class PromptLearner(nn.Module):
    def __init__(self, cls, n, width):
        super().__init__()
        self.ctx = nn.ParameterDict({f"{cls}_{p}": nn.Parameter(torch.zeros(n, 8, width)) for p in POSITIONS})


class PromptMaker(nn.Module):
    def __init__(self, cls, clip_model, width):
        super().__init__()
        self.prompt_learner = PromptLearner(cls, 7, width)
        self.text_encoder = TextEncoder(clip_model)


def modules(clip_path, layers):
    w = reference_clip.read_safetensors(clip_path)
    clip_model = reference_clip.load(w, 2, 2, "gelu", causal=False)
    width, embed = w["visual.conv1.weight"].shape[0], w["text_projection"].shape[1]
    twidth = w["ln_final.weight"].shape[0]
    adapters = {c: nn.ModuleList([ClipAdapter(width, embed) for _ in range(layers)]) for c in CLASSES}
    makers = {c: PromptMaker(c, clip_model, twidth) for c in CLASSES}
    return adapters, makers


def ours(t, c, li, head):
    return t[f"adapters.{c}.{li}.{head}.weight"]


def main():
    mode, clip_path, ck_path, layers, pth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    t = reference_clip.read_safetensors(ck_path)
    adapters, makers = modules(clip_path, layers)
    heads = [("fc1", "fc1"), ("fc2", "det"), ("fc3", "seg")]
    if mode == "write":
        with torch.no_grad():
            for c in CLASSES:
                for li in range(layers):
                    for theirs, mine in heads:
                        getattr(adapters[c][li], theirs)[0].weight.copy_(ours(t, c, li, mine))
                for j, p in enumerate(POSITIONS):
                    makers[c].prompt_learner.ctx[f"{c}_{p}"].copy_(t[f"prompts.{c}"][:, j])
        torch.save({"normal_det_adapters": adapters["normal"].state_dict(),
                    "abnormal_det_adapters": adapters["abnormal"].state_dict(),
                    "prompt_maker_normal": makers["normal"].state_dict(),
                    "prompt_maker_abnormal": makers["abnormal"].state_dict()}, pth)
        return
    ck = torch.load(pth, weights_only=True)  # PyTorch's default since 2.6
    adapters["normal"].load_state_dict(ck["normal_det_adapters"])
    adapters["abnormal"].load_state_dict(ck["abnormal_det_adapters"])
    makers["normal"].load_state_dict(ck["prompt_maker_normal"])
    makers["abnormal"].load_state_dict(ck["prompt_maker_abnormal"])
    for c in CLASSES:
        for li in range(layers):
            for theirs, mine in heads:
                assert torch.equal(getattr(adapters[c][li], theirs)[0].weight, ours(t, c, li, mine)), (c, li, theirs)
        for j, p in enumerate(POSITIONS):
            assert torch.equal(makers[c].prompt_learner.ctx[f"{c}_{p}"], t[f"prompts.{c}"][:, j]), (c, p)
    print("ok")


main()
