"""Per-phase peak RSS: each phase's own high-water mark, the whole run's the maximum of them."""
import sys

import pytest
import torch

from quantbench.measure.phases import Phases


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc/self/clear_refs")
def test_a_phase_peak_is_its_own_and_the_run_peak_the_largest():
    phases = Phases()
    with phases.phase("big"):
        big = torch.ones(50_000_000)  # 200 MB, touched
        del big
    with phases.phase("small"):
        pass
    big, small = (r["peak_rss_bytes"] for r in phases.records)
    assert big - small > 150e6  # the mark was reset between them: the small phase does not inherit the big one
    assert phases.summary()["peak_rss_bytes"] == big
    assert all(r["seconds"] >= 0 for r in phases.records)
