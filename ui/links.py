"""A shareable search: the session state as SPEC §7's URL query parameters and back (pure, no streamlit).

    streamlit run ui/app.py   ->   http://host:8501/?mode=describe&q=Felis+catus&within=Animalia&rank=genus&k=24

`ui/components/share.py` reads a session's URL once with `from_query` and writes `to_query` after each run.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from taxonomy import Rank, parse_key
from ui.state import (
    DEFAULT_K, DEFAULT_RANK, DESCRIBE, EXCLUDE, FROM_COLLECTION, K, K_STEP, MAX_K, MIN_K, MODE, MODES, PICKED, RANK,
    SOURCE, TEXT, selected_clade, set_clade,
)

# URL query parameters (SPEC §7): the search a link carries.
PARAM_MODE = "mode"
PARAM_TEXT = "q"
PARAM_WITHIN = "within"
PARAM_RANK = "rank"
PARAM_K = "k"
PARAM_IMAGE = "image"
PARAMS: tuple[str, ...] = (PARAM_MODE, PARAM_TEXT, PARAM_WITHIN, PARAM_RANK, PARAM_K, PARAM_IMAGE)


def clamp_k(value: int) -> int:
    """`value` on the results slider: between MIN_K and MAX_K, a multiple of K_STEP."""
    return max(MIN_K, min(MAX_K, round(value / K_STEP) * K_STEP))


def from_query(state: MutableMapping[str, Any], params: Mapping[str, str],
               resolve: Callable[[str], str] | None = None) -> list[str]:
    """Put the search a link carries (SPEC §7's query parameters) into the state.

    `resolve` turns a `within` value into a taxon key (a key, or the name of one taxon); it raises
    ValueError for an unknown one. Returns what could not be used, one sentence each; the rest applies.
    """
    problems = []
    mode = params.get(PARAM_MODE)
    if mode:
        if mode in MODES:
            state[MODE] = mode
        else:
            problems.append(f"mode={mode!r} is not a mode; expected one of {', '.join(MODES)}")
    text = params.get(PARAM_TEXT)
    if text:
        state[TEXT] = text
    within = params.get(PARAM_WITHIN)
    if within:
        try:
            key = resolve(within) if resolve is not None else within
            parse_key(key)
        except ValueError as e:
            problems.append(f"within={within!r}: {e}")
        else:
            set_clade(state, key)
    rank = params.get(PARAM_RANK)
    if rank:
        try:
            state[RANK] = Rank.parse(rank).label
        except ValueError as e:
            problems.append(f"rank={rank!r}: {e}")
    k = params.get(PARAM_K)
    if k:
        try:
            state[K] = clamp_k(int(k))
        except ValueError:
            problems.append(f"k={k!r} is not a number; expected {MIN_K} to {MAX_K}")
    image = params.get(PARAM_IMAGE)
    if image:
        state[SOURCE] = FROM_COLLECTION
        state[PICKED] = image
    return problems


def to_query(state: Mapping[str, Any]) -> dict[str, str]:
    """The query parameters of the current search: the mode, and every other one that is not its default."""
    params = {PARAM_MODE: str(state.get(MODE) or DESCRIBE)}
    if params[PARAM_MODE] == DESCRIBE and (state.get(TEXT) or "").strip():
        params[PARAM_TEXT] = state[TEXT].strip()
    clade = selected_clade(state)
    if clade and not state.get(EXCLUDE):  # the URL says "within" only; an excluded clade is not carried
        params[PARAM_WITHIN] = clade
    if state.get(RANK) and state[RANK] != DEFAULT_RANK:
        params[PARAM_RANK] = str(state[RANK])
    if state.get(K) and int(state[K]) != DEFAULT_K:
        params[PARAM_K] = str(int(state[K]))
    if params[PARAM_MODE] != DESCRIBE and state.get(SOURCE) == FROM_COLLECTION and state.get(PICKED):
        params[PARAM_IMAGE] = str(state[PICKED])
    return params
