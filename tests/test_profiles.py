import dataclasses

import pytest

from rankbook.settings import profiles


@dataclasses.dataclass(frozen=True)
class Demo(profiles.Settings):
    epochs: int = profiles.param(3, ge=1)
    alpha: float = profiles.param(0.1, gt=0, lt=1)
    alphas: tuple[float, ...] = profiles.param((0.1, 0.01), gt=0, lt=1)
    dataset: str = profiles.param("cifar10", choices=("cifar10", "cifar100"))
    verbose: bool = profiles.param(False)


TABLE = {"fast": Demo(), "reference": Demo(epochs=50), "paper": Demo(epochs=500)}


def test_resolve_order(monkeypatch):
    monkeypatch.delenv(profiles.ENV_VAR, raising=False)
    assert profiles.resolve(None) == "fast"
    assert profiles.resolve("") == "fast"
    monkeypatch.setenv(profiles.ENV_VAR, "paper")
    assert profiles.resolve("") == "paper"
    assert profiles.resolve("fast") == "fast"  # an explicit name wins over the environment


@pytest.mark.parametrize("source", ["argument", "env"])
def test_unknown_profile_names_valid_choices(monkeypatch, source):
    if source == "env":
        monkeypatch.setenv(profiles.ENV_VAR, "nonsense")
        call = lambda: profiles.resolve("")  # noqa: E731
    else:
        call = lambda: profiles.resolve("nonsense")  # noqa: E731
    with pytest.raises(profiles.ProfileError, match=r"unknown profile 'nonsense'.*fast, reference, paper"):
        call()


def test_select_applies_overrides_and_ignores_none():
    s = profiles.select(TABLE, "paper", epochs=None, alpha=0.5)
    assert (s.epochs, s.alpha) == (500, 0.5)


def test_lists_from_papermill_become_tuples():
    assert profiles.select(TABLE, "fast", alphas=[0.5, 0.25]).alphas == (0.5, 0.25)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": -1}, r"epochs=-1 is out of range: it must be >= 1"),
        ({"epochs": 2.5}, r"epochs must be int, got 2.5"),
        ({"epochs": True}, r"epochs must be int"),
        ({"alpha": 1.0}, r"alpha=1.0 is out of range: it must be < 1"),
        ({"alpha": 0}, r"alpha=0 is out of range: it must be > 0"),
        ({"alpha": "small"}, r"alpha must be float"),
        ({"alphas": (0.1, 2.0)}, r"alphas=2.0 is out of range"),
        ({"dataset": "mnist"}, r"dataset='mnist' is not one of the valid choices: 'cifar10', 'cifar100'"),
        ({"epoch": 3}, r"unknown setting\(s\) epoch for Demo; valid settings: epochs, alpha"),
    ],
)
def test_bad_parameters_get_clear_errors(overrides, message):
    with pytest.raises(profiles.ProfileError, match=message):
        profiles.select(TABLE, "fast", **overrides)


def test_int_is_accepted_for_float():
    assert profiles.select(TABLE, "fast", alpha=0.5).alpha == 0.5
    assert Demo(alphas=(1e-3,)).alphas == (1e-3,)


def test_table_must_cover_every_profile():
    with pytest.raises(profiles.ProfileError, match="lacks profile"):
        profiles.select({"fast": Demo()}, "fast")


@pytest.mark.parametrize(
    "text, expected", [("[0.5, 0.25]", (0.5, 0.25)), ("(0.5,)", (0.5,)), ("0.5", (0.5,))]
)
def test_tuples_arrive_as_text_or_lists(text, expected):
    """papermill -r passes a list as its text, -p as a YAML list: both become the tuple."""
    assert profiles.select(TABLE, "fast", alphas=text).alphas == expected
    assert profiles.select(TABLE, "fast", alphas=list(expected)).alphas == expected


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_non_finite_numbers_are_rejected(bad):
    with pytest.raises(profiles.ProfileError, match="alpha=.* is not a finite number"):
        profiles.select(TABLE, "fast", alpha=bad)


def test_unparseable_tuple_text_names_the_field():
    with pytest.raises(profiles.ProfileError, match=r"Demo.alphas must be tuple"):
        profiles.select(TABLE, "fast", alphas="[0.5,")


def test_chapter_07_parameters_fail_before_any_work():
    """papermill passes what the user typed: a bad value is refused when the settings are built."""
    from rankbook.settings.lm import PROFILES as LM

    assert profiles.select(LM, "fast", lora_ranks="4").lora_ranks == (4,)  # -p lora_ranks 4
    assert profiles.select(LM, "fast", lora_ranks="1,4").lora_ranks == (1, 4)
    with pytest.raises(profiles.ProfileError, match="null_seeds must be int, got 'abc'"):
        profiles.select(LM, "fast", null_seeds="abc")
    with pytest.raises(profiles.ProfileError, match="null_seeds=-1 is out of range"):
        profiles.select(LM, "fast", null_seeds=-1)
