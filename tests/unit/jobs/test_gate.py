"""The promotion decision, without MLflow."""

import pytest

from jobs.gate import decide
from jobs.model import improvement


def test_no_champion_promotes() -> None:
    d = decide("f1_macro", 0.5, None, champion_version=None)
    assert d.promote
    assert d.reason == "no champion yet"


@pytest.mark.parametrize(
    ("challenger", "champion", "margin", "promote"),
    [
        (0.97, 0.93, 0.0, True),
        (0.93, 0.93, 0.0, False),  # ties keep the champion
        (0.90, 0.93, 0.0, False),
        (0.95, 0.93, 0.05, False),  # wins, but not by the margin
        (0.99, 0.93, 0.05, True),
    ],
)
def test_higher_is_better(challenger: float, champion: float, margin: float, promote: bool) -> None:
    d = decide("accuracy", challenger, champion, champion_version="3", min_improvement=margin)
    assert d.promote is promote
    assert d.delta == pytest.approx(challenger - champion)


def test_log_loss_lower_is_better() -> None:
    assert decide("log_loss", 0.10, 0.20, champion_version="1").promote
    assert not decide("log_loss", 0.30, 0.20, champion_version="1").promote
    assert improvement("log_loss", 0.10, 0.20) == pytest.approx(0.10)


def test_float_noise_is_a_tie() -> None:
    d = decide("f1_macro", 0.1 + 0.2, 0.3, champion_version="2")
    assert not d.promote
    assert d.reason.startswith("tie")


def test_flags_for_humans() -> None:
    assert not decide("accuracy", 1.0, 0.1, champion_version="1", no_promote=True).promote
    assert decide("accuracy", 0.1, 1.0, champion_version="1", force=True).promote


def test_unusable_champion_is_not_replaced_silently() -> None:
    d = decide("accuracy", 0.9, None, champion_version="4", champion_error="bad columns")
    assert not d.promote
    assert "v4" in d.reason
    assert "--force-promote" in d.reason


def test_tags_record_both_scores_and_previous_version() -> None:
    tags = decide("f1_macro", 0.97, 0.93, champion_version="3").tags()
    assert tags["mlkube.decision"] == "promoted"
    assert tags["mlkube.previous_version"] == "3"
    assert tags["mlkube.challenger_score"] == "0.970000"
    assert tags["mlkube.champion_score"] == "0.930000"
    assert tags["mlkube.delta"] == "+0.040000"


def test_the_registry_page_says_why_in_one_line() -> None:
    won = decide("f1_macro", 0.9666, 0.9333, champion_version="5")
    assert won.description() == "promoted: f1_macro 0.9666 vs 0.9333 (v5), +0.0333"
    assert (
        decide("f1_macro", 0.9, None).description() == "promoted: f1_macro 0.9000, no champion yet"
    )
    tie = decide("accuracy", 0.9, 0.9, champion_version="2")
    assert tie.description() == (
        "not promoted: accuracy 0.9000 vs 0.9000 (v2), +0.0000 (tie: the champion stays)"
    )
