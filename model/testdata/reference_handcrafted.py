"""Independent computation of the hand-crafted prompt ensemble (the
authors' text_mood=fix) for model/madclip_test.go: each sentence through
CLIP's text tower as CLIP encodes text (causal mask; the activation given),
each embedding L2-normalised, averaged per class, the mean L2-normalised.

    reference_handcrafted.py TENSORS.safetensors CONFIG_JSON

TENSORS holds the CLIP weights under "clip." and the sentences' token ids
"ids" [2·n, 77], normal sentences first."""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "clip", "testdata"))
import reference_clip  # noqa: E402


def main():
    t = reference_clip.read_safetensors(sys.argv[1])
    cfg = json.loads(sys.argv[2])
    w = {k[len("clip."):]: v for k, v in t.items() if k.startswith("clip.")}
    model = reference_clip.load(w, cfg["vision_heads"], cfg["text_heads"], cfg["act"], causal=True)
    torch.set_grad_enabled(False)
    ids = t["ids"].long()
    emb = F.normalize(model.encode_text(ids), dim=-1)
    text = F.normalize(emb.reshape(2, ids.shape[0] // 2, -1).mean(1), dim=-1)
    json.dump({"text": text.flatten().tolist()}, sys.stdout)


main()
