#!/usr/bin/env python3
"""Converts CLIP weights to the safetensors layout madclip reads.

    scripts/convert_clip.py IN OUT.safetensors [--vocab FILE]

IN may be one of OpenAI's TorchScript archives (ViT-L-14-336px.pt, ...), a
torch.save state dict (.pt/.pth/.bin, possibly nested under "state_dict" or
"model"), or a Hugging Face CLIP checkpoint (model.safetensors or
pytorch_model.bin). The output keeps OpenAI's tensor names and each tensor's
stored dtype; the non-tensor extras (input_resolution, context_length,
vocab_size) are dropped. It needs PyTorch but not the safetensors package.
`madclip weights convert` does the same in Go.
"""
import argparse
import filecmp
import io
import json
import os
import pickle
import re
import shutil
import struct
import sys
import tempfile
import zipfile

try:
    import torch
except ImportError:
    sys.exit("convert_clip.py needs PyTorch in this Python (pip install torch, or Debian's python3-torch). "
             "Without Python, 'madclip weights convert IN OUT.safetensors' converts the same files.")

EXTRAS = {"input_resolution", "context_length", "vocab_size"}
ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
             torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}
FROM_ST = {v: k for k, v in ST_DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    body = memoryview(raw)[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(body[b:end]), dtype=torch.uint8) if end > b else torch.empty(0, dtype=torch.uint8)
        out[name] = t.view(FROM_ST[e["dtype"]]).reshape(e["shape"])
    return out


class _Opaque:
    """Stands for whatever a pickle would build or call: nothing is imported or run."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Opaque()

    def __setstate__(self, state):
        pass


STORAGE_ITEM = {"DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
                "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1}


def damaged_storage(path):
    """Why the zip archive at path (TorchScript or torch.save) cannot be read
    faithfully, or None: PyTorch reads a storage's elements from its record
    whatever the record's size, so a record cut short (its checksum made
    anew) would load as memory beyond it. madclip weights convert checks the same."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as z:
        pkls = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pkls:
            return None
        prefix = pkls[0][:-len("data.pkl")]
        sizes = {i.filename: i.file_size for i in z.infolist()}
        found = []

        class Scan(pickle.Unpickler):
            def find_class(self, module, name):
                return name if name in STORAGE_ITEM else _Opaque

            def persistent_load(self, pid):
                found.append(pid)
                return _Opaque()

        try:
            Scan(io.BytesIO(z.read(pkls[0]))).load()
        except Exception as e:  # noqa: BLE001 - any failure is the file's
            return f"a damaged archive: data.pkl: {e}"
    for pid in found:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and pid[1] in STORAGE_ITEM):
            continue
        _, kind, key, _, numel = pid
        have, need = sizes.get(f"{prefix}data/{key}"), numel * STORAGE_ITEM[kind]
        if have is None:
            return f"a damaged archive: no storage record data/{key}"
        if have != need:
            return f"a damaged archive: storage record data/{key} holds {have} bytes, its {numel} elements take {need}"
    return None


def read_any(path):
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    try:
        return dict(torch.jit.load(path, map_location="cpu").state_dict())
    except (RuntimeError, ValueError):
        pass
    obj = torch.load(path, map_location="cpu")
    flat = {}

    def walk(prefix, v):
        if isinstance(v, torch.Tensor):
            flat[prefix] = v
        elif isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):  # named as madclip weights convert names it, then refused
                    walk(f"{prefix}[{k}]", x)
                else:
                    walk(f"{prefix}.{k}" if prefix else k, x)

    walk("", obj)
    return flat


def strip_prefix(sd):
    for p in ("state_dict.", "model."):
        if sd and all(k.startswith(p) for k in sd):
            return {k[len(p):]: v for k, v in sd.items()}
    return sd


HF_FIXED = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
    "vision_model.embeddings.class_embedding": "visual.class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",
    "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
    "vision_model.post_layernorm.weight": "visual.ln_post.weight",
    "vision_model.post_layernorm.bias": "visual.ln_post.bias",
    "logit_scale": "logit_scale",
}
HF_PARTS = {"layer_norm1.": "ln_1.", "layer_norm2.": "ln_2.", "mlp.fc1.": "mlp.c_fc.",
            "mlp.fc2.": "mlp.c_proj.", "self_attn.out_proj.": "attn.out_proj."}
HF_LAYER = re.compile(r"^(text|vision)_model\.encoder\.layers\.(\d+)\.(.+)$")


class NotClip(Exception):
    """Why the input is not the CLIP this script converts."""


def from_hf(sd):
    """OpenAI's names for a Hugging Face CLIP's tensors (q, k and v packed,
    projections transposed); NotClip when a tensor has no place there."""
    out, qkv = {}, {}
    for k, v in sd.items():
        if k.endswith("position_ids"):
            continue
        if k in HF_FIXED:
            out[HF_FIXED[k]] = v
            continue
        if k == "text_projection.weight":
            out["text_projection"] = v.t().contiguous()
            continue
        if k == "visual_projection.weight":
            out["visual.proj"] = v.t().contiguous()
            continue
        m = HF_LAYER.match(k)
        if not m:
            raise NotClip(f"unknown Hugging Face CLIP tensor {k}")
        prefix = ("visual." if m.group(1) == "vision" else "") + f"transformer.resblocks.{m.group(2)}."
        rest = m.group(3)
        for a, b in HF_PARTS.items():
            if rest.startswith(a):
                out[prefix + b + rest[len(a):]] = v
                break
        else:
            m2 = re.match(r"self_attn\.([qkv])_proj\.(weight|bias)$", rest)
            if not m2:
                raise NotClip(f"unknown Hugging Face CLIP tensor {k}")
            qkv.setdefault(prefix + "attn.in_proj_" + m2.group(2), {})[m2.group(1)] = v
    for name, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise NotClip(f"{name}: q, k and v are not all present")
        out[name] = torch.cat([parts["q"], parts["k"], parts["v"]], 0)
    return out


# OpenAI's releases by their converted file's name: (image size, patch,
# vision width, vision blocks). A file under one of these names must hold
# that release, as madclip looks for its default weights by the name.
RELEASES = {"ViT-B-32.safetensors": (224, 32, 768, 12), "ViT-B-16.safetensors": (224, 16, 768, 12),
            "ViT-L-14.safetensors": (224, 14, 1024, 24), "ViT-L-14-336px.safetensors": (336, 14, 1024, 24)}


def architecture(sd):
    """The vision tower's (image size, patch, width, blocks) from the shapes."""
    conv = sd["visual.conv1.weight"]
    patch, width = conv.shape[-1], conv.shape[0]
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    blocks = len({k.split(".")[3] for k in sd if k.startswith("visual.transformer.resblocks.")})
    return (grid * patch, patch, width, blocks)


def block_shapes(prefix, blocks, d):
    """Every tensor of a residual attention tower of width d."""
    out = {}
    for i in range(blocks):
        b = f"{prefix}{i}."
        out.update({b + "attn.in_proj_weight": [3 * d, d], b + "attn.in_proj_bias": [3 * d],
                    b + "attn.out_proj.weight": [d, d], b + "attn.out_proj.bias": [d],
                    b + "ln_1.weight": [d], b + "ln_1.bias": [d], b + "ln_2.weight": [d], b + "ln_2.bias": [d],
                    b + "mlp.c_fc.weight": [4 * d, d], b + "mlp.c_fc.bias": [4 * d],
                    b + "mlp.c_proj.weight": [d, 4 * d], b + "mlp.c_proj.bias": [d]})
    return out


def expected_shapes(sd):
    """Every tensor of the CLIP whose widths, grid and depths sd's shapes
    give (as OpenAI's loader reads them), with its shape."""
    conv, pos = list(sd["visual.conv1.weight"].shape), sd["visual.positional_embedding"].shape
    width, patch, embed = conv[0], conv[-1], sd["text_projection"].shape[-1]
    text, vocab = sd["token_embedding.weight"].shape[-1], sd["token_embedding.weight"].shape[0]
    ctx = sd["positional_embedding"].shape[0] if "positional_embedding" in sd else 77

    def blocks(prefix):
        return len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})
    want = {"visual.class_embedding": [width], "visual.positional_embedding": [pos[0], width],
            "visual.conv1.weight": [width, 3, patch, patch], "visual.proj": [width, embed],
            "visual.ln_pre.weight": [width], "visual.ln_pre.bias": [width],
            "visual.ln_post.weight": [width], "visual.ln_post.bias": [width],
            "token_embedding.weight": [vocab, text], "positional_embedding": [ctx, text],
            "ln_final.weight": [text], "ln_final.bias": [text], "text_projection": [text, embed], "logit_scale": []}
    want.update(block_shapes("visual.transformer.resblocks.", blocks("visual.transformer.resblocks."), width))
    want.update(block_shapes("transformer.resblocks.", blocks("transformer.resblocks."), text))
    return want


def unusable(sd):
    """Why madclip could not load these weights, or None: the checks
    madclip weights convert and madclip's loader make (exactly one CLIP's
    tensors and shapes, floating-point, CLIP's vocabulary of 49408 tokens,
    a context of 77)."""
    rows = sd["visual.positional_embedding"].shape[0]
    if rows < 2 or round((rows - 1) ** 0.5) ** 2 + 1 != rows:
        return f"not CLIP weights: visual.positional_embedding has {rows} rows, not a square grid plus one"
    for tower, prefix in (("vision", "visual.transformer.resblocks."), ("text", "transformer.resblocks.")):
        if not any(k.startswith(prefix) for k in sd):
            return f"not CLIP weights: the {tower} tower has no blocks ({prefix}N.*)"
    widths = {"vision width": sd["visual.conv1.weight"].shape[0], "text width": sd["token_embedding.weight"].shape[-1],
              "patch size": sd["visual.conv1.weight"].shape[-1], "embed dim": sd["text_projection"].shape[-1]}
    for name, v in widths.items():
        if v <= 0:
            return f"not CLIP weights: its {name} is {v}"
    for name in ("vision width", "text width"):
        heads = max(1, widths[name] // 64)
        if widths[name] % heads:
            return f"not CLIP weights: its {name} {widths[name]} does not divide into {heads} heads of 64"
    want = expected_shapes(sd)
    missing = sorted(n for n in want if n not in sd)
    if missing:
        return f"not a complete CLIP: missing {', '.join(missing[:3])}" + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    unexpected = sorted(n for n in sd if n not in want)
    if unexpected:
        return f"not a complete CLIP: unexpected {', '.join(unexpected[:3])}" + (f" and {len(unexpected) - 3} more" if len(unexpected) > 3 else "")
    for n in sorted(want):
        if list(sd[n].shape) != want[n]:
            return f"not a complete CLIP: {n} has shape {list(sd[n].shape)}, want {want[n]}"
    for n in sorted(sd):
        if not sd[n].is_floating_point():
            return f"tensor {n} holds {sd[n].dtype}, not floating-point numbers"
    vocab = sd["token_embedding.weight"].shape[0]
    if vocab < 49408:
        return f"a vocabulary of {vocab} tokens, but CLIP's tokenizer gives ids up to 49407"
    ctx = sd["positional_embedding"].shape[0] if "positional_embedding" in sd else 0
    if ctx < 77:
        return f"a text context of {ctx} tokens, but MadCLIP's prompts take 77"
    return None


def write_safetensors(path, tensors, metadata):
    names = sorted(tensors)
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for n in names:
        t = tensors[n].detach().contiguous().cpu()
        if t.dtype not in ST_DTYPES:
            sys.exit(f"convert_clip: tensor {n} has unsupported dtype {t.dtype}")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[n] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    hdr = json.dumps(header, separators=(",", ":")).encode()
    hdr += b" " * (-(8 + len(hdr)) % 8)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".convert-")
    try:
        # mkstemp makes the file 0600; give it the mode any new file gets
        # (0666 less the umask), as madclip weights convert does.
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(hdr)))
            f.write(hdr)
            for b in blobs:
                f.write(b)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def refusal(path):
    """Why an output may not go to path, or None: it may replace nothing, an
    empty file, or CLIP weights that madclip wrote (its metadata says so),
    never a madclip checkpoint nor anyone else's file; madclip weights
    convert follows the same rule."""
    if not os.path.lexists(path):
        return None
    ours = "it exists and madclip did not write it; refusing to replace it (remove it or choose another name)"
    if not os.path.isfile(path):
        return ours
    if os.path.getsize(path) == 0:
        return None
    try:
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            meta = json.loads(f.read(n)).get("__metadata__", {}) if n <= 100 << 20 else {}
    except (OSError, ValueError, struct.error, AttributeError):
        return ours
    if meta.get("madclip"):
        return "it holds a madclip checkpoint; refusing to replace it with CLIP weights (remove it or choose another name)"
    if meta.get("written_by") == "madclip" or meta.get("converted_by") == "madclip":
        return None
    return ours


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--vocab", help="CLIP's bpe_simple_vocab_16e6.txt.gz, copied next to OUTPUT")
    a = ap.parse_args()
    if not os.path.exists(a.input):
        sys.exit(f"convert_clip: {a.input}: no such file")
    why = refusal(a.output)
    if why:
        sys.exit(f"convert_clip: {a.output}: {why}")
    if a.vocab and not os.path.isfile(a.vocab):
        sys.exit(f"convert_clip: --vocab {a.vocab}: no such file")
    vocab_out = os.path.join(os.path.dirname(os.path.abspath(a.output)), "bpe_simple_vocab_16e6.txt.gz")
    copy_vocab = bool(a.vocab) and not (os.path.isfile(vocab_out) and filecmp.cmp(a.vocab, vocab_out, shallow=False))
    if copy_vocab and os.path.lexists(vocab_out) and not (os.path.isfile(vocab_out) and os.path.getsize(vocab_out) == 0):
        sys.exit(f"convert_clip: {vocab_out}: it exists and is another file than --vocab; refusing to replace it (remove it or choose another folder)")
    why = damaged_storage(a.input)
    if why:
        sys.exit(f"convert_clip: {a.input}: {why}; nothing was written")
    try:
        sd = strip_prefix(read_any(a.input))
    except Exception as e:  # noqa: BLE001 - any reader failure is the file's problem
        sys.exit(f"convert_clip: {a.input}: not readable as CLIP weights: {e}")
    if any(k.startswith(("vision_model.", "text_model.")) for k in sd):
        try:
            sd = from_hf(sd)
        except NotClip as e:
            sys.exit(f"convert_clip: {a.input}: {e}; nothing was written")
    sd = {k: v for k, v in sd.items() if k not in EXTRAS}
    for need in ("visual.conv1.weight", "visual.positional_embedding", "token_embedding.weight", "text_projection"):
        if need not in sd:
            sys.exit(f"convert_clip: {a.input}: not CLIP weights (no {need})")
    odd = sorted(k for k in sd if "[" in k)
    if odd:
        sys.exit(f"convert_clip: {a.input}: not a complete CLIP: unexpected {odd[0]} (a tensor under a non-string key)")
    why = unusable(sd)
    if why:
        sys.exit(f"convert_clip: {a.input}: {why}; nothing was written")
    want = RELEASES.get(os.path.basename(a.output))
    if want and architecture(sd) != want:
        got = architecture(sd)
        sys.exit(f"convert_clip: {a.input}: not the CLIP expected: it holds {got[0]} px, patch {got[1]}, width {got[2]}, "
                 f"{got[3]} layers, where {os.path.basename(a.output)} names one of {want[0]} px, patch {want[1]}, "
                 f"width {want[2]}, {want[3]} layers; nothing was written")
    write_safetensors(a.output, sd, {"format": "pt", "source": os.path.basename(a.input), "converted_by": "madclip"})
    if copy_vocab:
        shutil.copyfile(a.vocab, vocab_out)
    print(f"wrote {a.output}: {len(sd)} tensors")


if __name__ == "__main__":
    main()
