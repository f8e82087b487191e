"""How the golden ids in bpe_test.go were obtained: CLIP's tokenizer algorithm
written out independently in Python (NFC in place of ftfy, which Debian 12 does
not package), with the `regex` module for \\p{L}/\\p{N}.

    /usr/bin/python3 reference_tokenizer.py VOCAB.txt.gz < strings.json
prints one JSON list of id lists (SOT and EOT included)."""
import gzip
import html
import json
import re
import sys
import unicodedata

import regex


def byte_symbols():
    keep = [b for b in range(256) if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def main():
    lines = gzip.open(sys.argv[1]).read().decode("utf-8").split("\n")
    merges = [tuple(l.split()) for l in lines[1:1 + 49408 - 514]]
    sym = byte_symbols()
    order = [b for b in range(256) if sym[b] == chr(b)] + [b for b in range(256) if sym[b] != chr(b)]
    vocab = [sym[b] for b in order] + [sym[b] + "</w>" for b in order]
    vocab += ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    ids = {v: i for i, v in enumerate(vocab)}
    rank = {m: i for i, m in enumerate(merges)}
    pat = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                        regex.IGNORECASE)

    def bpe(word):
        if word in ("<|startoftext|>", "<|endoftext|>"):
            return [word]
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = [(rank.get((parts[i], parts[i + 1]), 1 << 30), i) for i in range(len(parts) - 1)]
            r, _ = min(pairs)
            if r == 1 << 30:
                break
            a, b = merges[r]
            out, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        return parts

    def encode(text):
        text = unicodedata.normalize("NFC", text)
        text = html.unescape(html.unescape(text)).strip()
        text = re.sub(r"\s+", " ", text).strip().lower()
        out = [49406]
        for tok in pat.findall(text):
            word = "".join(sym[b] for b in tok.encode("utf-8"))
            out += [ids[p] for p in bpe(word)]
        return out + [49407]

    json.dump([encode(s) for s in json.load(sys.stdin)], sys.stdout)


main()
