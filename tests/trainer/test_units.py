

def test_eta_counts_the_time_before_the_first_cell():
    """Kernel set-up before the first cell is part of the rate (it recurs in every unit)."""
    from abrunnerd.trainer.progress import EtaClock

    now = [100.0]
    clock = EtaClock(clock=lambda: now[0])
    now[0] = 110.0  # 10 s of kernel matrices, then two cells at once
    clock.tick()
    assert clock.eta(98) is None
    clock.tick()
    assert clock.eta(98) == 490.0  # 10 s / 2 cells * 98 remaining
