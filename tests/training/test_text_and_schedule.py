from collections import Counter

import pytest
import torch

from taxonomy import TEXT_TYPES, Lineage, caption
from training.scheduler import capped_warmup, warmup_cosine
from training.text import lineage_captions, pick, text_type_at


def test_a_fixed_text_type_is_used_for_every_batch():
    assert {text_type_at(step, 0, "sci_com") for step in range(50)} == {"sci_com"}


def test_mixed_draws_each_type_about_equally_and_repeatably():
    draws = [text_type_at(step, 7, "mixed") for step in range(1000)]
    counts = Counter(draws)
    assert set(counts) == set(TEXT_TYPES)
    assert all(150 < n < 250 for n in counts.values()), counts
    assert draws == [text_type_at(step, 7, "mixed") for step in range(1000)]  # a function of (seed, step)
    assert draws != [text_type_at(step, 8, "mixed") for step in range(1000)]


def test_captions_and_picking_follow_text_types_order():
    magpie = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"],
                                "black-billed magpie")
    assert lineage_captions(magpie) == [caption(magpie, t) for t in TEXT_TYPES]
    tokens = torch.arange(2 * 5 * 3).reshape(2, 5, 3)
    assert torch.equal(pick(tokens, "common"), tokens[:, TEXT_TYPES.index("common")])


def test_warmup_then_cosine():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    lr_at = warmup_cosine(optimizer, base_lr=1.0, warmup=10, total_steps=110)
    assert lr_at(0) == pytest.approx(0.1)
    assert lr_at(9) == pytest.approx(1.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.0)
    assert lr_at(60) == pytest.approx(0.5)
    assert lr_at(109) == pytest.approx(0.0, abs=1e-3)
    values = [lr_at(step) for step in range(10, 110)]
    assert values == sorted(values, reverse=True)


def test_warmup_is_capped_for_short_runs():
    assert capped_warmup(1000, 300_000) == 1000  # BioCLIP's own run is untouched
    assert capped_warmup(1000, 200) == 20
    assert capped_warmup(1000, 3) == 1
