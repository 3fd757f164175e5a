"""The demo's sentences say only what its numbers support (made-up tables, each claim present and absent)."""

from __future__ import annotations

import pytest

from guidekit.demo_explain import clearly_different, explain

ROLES = {"none": "none", "constant": "const", "eds": "eds"}


def _rows(acc_c: float, acc_e: float, fd_c: float = 5.0, fd_e: float = 8.0, v_c: float | None = 0.9,
          v_e: float | None = 0.2) -> dict:
    rows = {"none": {"accuracy": 0.30, "fd": 4.0},
            "const": {"accuracy": acc_c, "fd": fd_c},
            "eds": {"accuracy": acc_e, "fd": fd_e}}
    if v_c is not None:
        rows["const"]["vanished_fraction"] = v_c
    if v_e is not None:
        rows["eds"]["vanished_fraction"] = v_e
    return rows


def _text(rows: dict, samples: int = 200, gamma: float = 4.0, eds_gamma: float = 4.0, roles: dict = ROLES) -> str:
    return " ".join(explain(rows, roles, samples, gamma, eds_gamma))


def test_clearly_different_is_two_standard_errors():
    assert clearly_different(0.95, 0.85, 200)  # difference 0.10, 2·SE ≈ 0.061
    assert not clearly_different(0.90, 0.87, 200)  # 0.03 < 2·SE ≈ 0.065
    assert not clearly_different(0.90, 0.85, 20)  # the same gap on 20 samples is noise
    assert not clearly_different(1.0, 1.0, 200) and not clearly_different(0.5, 0.9, 0)


def test_higher_accuracy_and_higher_fd_are_both_said():
    text = _text(_rows(0.85, 0.95, fd_c=5.0, fd_e=8.0))
    assert "EDS reached a higher oracle accuracy than constant guidance at the same γ = 4 (0.950 vs 0.850)" in text
    assert "a higher FD (8.00 vs 5.00)" in text
    assert "lower oracle accuracy" not in text and "about the same" not in text


def test_higher_accuracy_without_higher_fd_claims_no_fd_cost():
    text = _text(_rows(0.85, 0.95, fd_c=8.0, fd_e=5.0))
    assert "higher oracle accuracy" in text and "an FD no higher (5.00 vs 8.00)" in text
    assert "a higher FD" not in text


def test_lower_accuracy_is_said_as_lower():
    text = _text(_rows(0.95, 0.80))
    assert "EDS reached a lower oracle accuracy than constant guidance" in text
    assert "higher oracle accuracy" not in text and "guides harder" not in text


def test_a_difference_within_noise_is_no_claim():
    text = _text(_rows(0.88, 0.90))
    assert "about the same oracle accuracy" in text and "within the sampling noise of 200 samples" in text
    assert "higher oracle accuracy" not in text and "lower oracle accuracy" not in text
    # the same numbers on 5,000 samples are a real difference
    assert "higher oracle accuracy" in _text(_rows(0.88, 0.90), samples=5000)


def test_different_gammas_are_named_not_called_the_same():
    text = _text(_rows(0.85, 0.95), gamma=4.0, eds_gamma=2.0)
    assert "(EDS γ = 2, constant γ = 4)" in text and "same γ" not in text


def test_vanishing_sentence_only_when_measured_and_clearly_different():
    assert "faded below 10% of its peak" in _text(_rows(0.85, 0.95, v_c=0.9, v_e=0.2))
    assert "90%" in _text(_rows(0.85, 0.95, v_c=0.9, v_e=0.2))
    assert "faded" not in _text(_rows(0.85, 0.95, v_c=0.5, v_e=0.48))
    assert "faded" not in _text(_rows(0.85, 0.95, v_c=None, v_e=0.2))


def test_the_advice_points_to_guidekit_compare_whenever_something_is_compared():
    assert "matched accuracy with `guidekit compare " in _text(_rows(0.85, 0.95))
    assert explain({"none": {"accuracy": 0.3, "fd": 4.0}}, ROLES, 200, 4.0, 4.0) == []


@pytest.mark.parametrize(("acc", "word"), [(0.85, "raised"), (0.10, "lowered"), (0.32, "about the same")])
def test_without_eds_constant_guidance_is_compared_with_no_guidance(acc, word):
    rows = {"none": {"accuracy": 0.30, "fd": 4.0}, "const": {"accuracy": acc, "fd": 5.0}}
    text = _text(rows, roles={"none": "none", "constant": "const", "eds": "missing"})
    assert word in text and "EDS" not in text
