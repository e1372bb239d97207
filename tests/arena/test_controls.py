import io

import numpy as np
import pytest
from PIL import Image

from addbench.arena.controls import control_image, control_png, passed, rater_stats


def test_controls_are_deterministic_and_clearly_degraded(run_dirs):
    path = run_dirs[0] / "samples" / "00000_0.png"
    original = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    for kind in ("blur", "noise"):
        png = control_png(path, kind, (0, 0))
        assert png == control_png(path, kind, (0, 0))  # same bytes on every request
        out = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)
        assert out.shape == original.shape
        assert np.abs(out - original).mean() > 10
    blurred = np.asarray(control_image(Image.open(path), "blur", (0, 0)), dtype=np.float64)
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.5 * np.abs(np.diff(original, axis=1)).mean()
    noise = [np.asarray(control_image(Image.open(path), "noise", k)) for k in ((0, 0), (0, 1))]
    assert not np.array_equal(*noise)  # seeded by the key
    assert control_png(path, None, (0, 0)) == control_png(path, "other_prompt", (0, 0)) == path.read_bytes()
    with pytest.raises(ValueError):
        control_image(Image.open(path), "sepia", (0, 0))


@pytest.mark.parametrize("kind,side,answers,ok", [
    ("blur", "left", {"quality": "right", "alignment": "tie"}, True),
    ("blur", "left", {"quality": "tie", "alignment": "right"}, False),
    ("noise", "right", {"quality": "left", "alignment": "left"}, True),
    ("noise", "right", {"quality": "left", "alignment": "right"}, False),
    ("other_prompt", "right", {"quality": "right", "alignment": "left"}, True),
    ("other_prompt", "left", {"quality": "right", "alignment": "left"}, False),
])
def test_a_check_is_passed_only_when_every_expected_answer_names_the_real_side(kind, side, answers, ok):
    assert passed(kind, side, answers) is ok


def test_raters_failing_more_than_the_threshold_are_flagged():
    def v(rater, control=None, ok=None):
        return {"rater": rater, "control": control, "passed": ok}
    votes = ([v("good")] * 5 + [v("good", "blur", 1)] * 3 + [v("good", "noise", 0)]  # 1/4 failed
             + [v("bad")] * 5 + [v("bad", "blur", 0), v("bad", "noise", 1)]  # 1/2 failed
             + [v("fresh")] * 2)  # no check answered yet
    stats = rater_stats(votes, max_fail=0.25)
    assert stats["good"] == {"votes": 9, "controls": 4, "failed": 1, "fail_rate": 0.25, "flagged": False}
    assert stats["bad"]["flagged"] and stats["bad"]["fail_rate"] == 0.5
    assert stats["fresh"]["flagged"] is False and stats["fresh"]["fail_rate"] is None
    assert rater_stats(votes, max_fail=0.2)["good"]["flagged"]
