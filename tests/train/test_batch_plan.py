"""--dry-run's batch line: processes x accumulation rounds x micro-batch, and a bad micro_batch refused there."""
import pytest

from addbench.errors import AddbenchError
from addbench.train.entry import batch_plan


def test_batch_plan_lines():
    assert batch_plan({"batch": 128, "micro_batch": 4}, 1) == (
        "step = batch 128 = 1 process(es) x 32 accumulation round(s) x 4 images per forward/backward")
    assert batch_plan({"batch": 128, "micro_batch": 0}, 8).endswith("8 process(es) x 1 accumulation round(s) x 16 "
                                                                     "images per forward/backward")
    with pytest.raises(AddbenchError, match="does not divide the per-process batch 16"):
        batch_plan({"batch": 128, "micro_batch": 3}, 8)
