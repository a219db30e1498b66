"""Rendering: every body plan draws, pictures are functions of their seed, and any size works."""
from dataclasses import replace

import numpy as np
import pytest

from demo.constants import FORMS, PLANS, STYLES
from demo.bodies import DRAWERS
from demo.pose import Pose
from demo.render import parts_of, render
from demo.species import available
from demo.traits import keyed_rng, traits_of

_FORM_OF_STYLE = {style: (plan, form) for plan in PLANS for form in FORMS[plan] for style in STYLES[form]}


@pytest.fixture(scope="module")
def traits():
    return traits_of(available()[0])


@pytest.mark.parametrize("style", sorted(DRAWERS))
def test_every_style_draws_an_organism_that_stands_out(traits, style):
    plan, form = _FORM_OF_STYLE[style]
    organism = replace(traits, plan=plan, form=form, style=style)
    parts = parts_of(organism, Pose.draw(plan, keyed_rng("pose", style)))
    assert parts and all(np.isfinite(part.points).all() and part.points.shape[1] == 2 for part in parts)
    assert any(part.kind == "body" for part in parts)
    picture = np.asarray(render(organism, 64, keyed_rng("picture", style)), np.float32)
    assert picture.shape == (64, 64, 3)
    assert picture.std() > 12  # more than a flat background with noise


def test_a_picture_is_a_function_of_its_seed(traits):
    one = np.asarray(render(traits, 64, keyed_rng("same")))
    assert np.array_equal(one, np.asarray(render(traits, 64, keyed_rng("same"))))
    assert not np.array_equal(one, np.asarray(render(traits, 64, keyed_rng("other"))))


@pytest.mark.parametrize("size", [32, 224])
def test_any_size_renders(traits, size):
    assert render(traits, size, keyed_rng(size)).size == (size, size)


def test_poses_vary_placement_light_and_camera():
    poses = [Pose.draw("creature", keyed_rng("pose", i)) for i in range(20)]
    for field in ("angle", "scale", "brightness", "blur", "noise"):
        assert len({getattr(pose, field) for pose in poses}) == 20
    assert {pose.mirror for pose in poses} == {True, False}
