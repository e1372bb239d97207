from collections import Counter
from itertools import combinations

import pytest

from addbench.arena.schedule import build_schedule
from addbench.errors import AddbenchError

KEYS = [(p, s) for p in range(5) for s in (0, 1)]


def real(items):
    return [it for it in items if it.control is None]


def test_the_same_rater_and_seed_always_get_the_same_schedule():
    a = build_schedule(3, KEYS, "r1", seed=7, controls_every=5)
    assert a == build_schedule(3, KEYS, "r1", seed=7, controls_every=5)
    assert a != build_schedule(3, KEYS, "r2", seed=7, controls_every=5)
    assert a != build_schedule(3, KEYS, "r1", seed=8, controls_every=5)
    assert [it.position for it in a] == list(range(len(a)))


def test_every_prefix_of_a_schedule_shows_each_model_pair_equally_often_give_or_take_one():
    for rater in ("r1", "alice", "x"):
        items = real(build_schedule(4, KEYS, rater, controls_every=4))
        assert len(items) == 6 * len(KEYS)  # default: every model pair on every key once
        counts = Counter()
        for it in items:
            counts[tuple(sorted((it.left.run, it.right.run)))] += 1
            assert set(counts) <= set(combinations(range(4), 2))
            assert max(counts.values()) - min(counts[p] for p in combinations(range(4), 2)) <= 1


def test_each_model_pair_sees_every_key_once_and_model_a_on_the_left_half_the_time():
    items = real(build_schedule(3, KEYS, "r1", controls_every=0))
    for pair in combinations(range(3), 2):
        mine = [it for it in items if tuple(sorted((it.left.run, it.right.run))) == pair]
        assert sorted(it.key for it in mine) == KEYS
        assert all(it.left.key == it.right.key == it.key for it in mine)
        left_a = sum(it.left.run == pair[0] for it in mine)
        assert abs(left_a - len(mine) / 2) <= 1


def test_sides_are_not_a_fixed_pattern():
    firsts = {build_schedule(2, KEYS, f"r{i}", controls_every=0)[0].left.run for i in range(20)}
    assert firsts == {0, 1}


def test_one_attention_check_sits_in_every_block_of_n_items():
    items = build_schedule(3, KEYS, "r1", pairs=23, controls_every=4)
    assert len(real(items)) == 23
    assert len(items) == 23 + 8  # ceil(23 / 3) checks
    for start in range(0, 28, 4):
        assert sum(it.control is not None for it in items[start:start + 4]) == 1
    kinds = Counter(it.control for it in build_schedule(3, KEYS, "r2", controls_every=2) if it.control)
    assert set(kinds) == {"blur", "noise", "other_prompt"}


def test_a_check_pits_a_run_against_a_bad_copy_of_its_own_sample():
    for it in build_schedule(3, KEYS, "r3", controls_every=2):
        if it.control is None:
            continue
        bad, good = (it.left, it.right) if it.control_side == "left" else (it.right, it.left)
        assert good.control is None and bad.control == it.control and good.run == bad.run and good.key == it.key
        if it.control == "other_prompt":
            assert bad.key[0] != it.key[0]
        else:
            assert bad.key == it.key


def test_one_prompt_means_no_other_prompt_checks():
    items = build_schedule(2, [(0, 0), (0, 1)], "r1", controls_every=2)
    assert {it.control for it in items if it.control} <= {"blur", "noise"}


@pytest.mark.parametrize("kwargs", [{"controls_every": 1}, {"controls_every": -2}, {"pairs": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(AddbenchError):
        build_schedule(2, KEYS, "r1", **kwargs)
