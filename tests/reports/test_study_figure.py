"""The bit-width study figure: a panel per model/activation format, a front per policy."""

from __future__ import annotations

from qasic.reports.study import study_figure


def _rec(model, act, policy, e, acc, fmt="int"):
    return {"model": model, "activation_format": act, "policy": policy, "energy_pj": e,
            "accuracy": acc, "weight_format": fmt}


def test_panels_fronts_and_random_points():
    recs = [_rec("m", "int8", "uniform", 2e6, 0.99), _rec("m", "int8", "uniform", 1e6, 0.9),
            _rec("m", "int8", "uniform", 1.5e6, 0.85),  # dominated: not on the front line
            _rec("m", "int8", "hawq", 1.2e6, 0.97), _rec("m", "int8", "random", 1.2e6, 0.93),
            _rec("m", "int4", "format", 1e6, 0.95, "fp4_e2m1")]
    fig = study_figure(recs)
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["m, activations int8", "m, activations int4"]
    lines = {line.get_label(): line for line in axes[0].get_lines()}
    assert len(lines["uniform"].get_xdata()) == 2 and "hawq" in lines
    assert len(axes[0].collections[0].get_offsets()) == 1  # the random point
    assert [t.get_text() for t in axes[1].texts] == ["fp4_e2m1"]
