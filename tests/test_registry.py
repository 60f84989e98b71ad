"""The known-divergence registry is strict: exactly the registered behaviour passes as
a known divergence; conforming ("fixed") or deviating differently fails."""
import pytest
import torch

import suite.divergences as registry
from conform.expect import Expect
from conform.outcome import Raised
from suite.divergences import Divergence, OverlappingEntries, applies_to_build
from suite.plugin import Conform, ConformanceFailure
from tests.planted import PLANTED, reference_add
from tests.planted_torch import AddCase, torch_add


def _entry(**overrides):
    fields = dict(id="planted-off-by-one", rule=PLANTED, torch=">=2.0", reason="planted", evidence="tests/planted.py",
                  when=lambda case: case.a >= 0, torch_does=lambda case, expected: expected - 1.0,
                  repro=AddCase(1.0, 2.0), case_type=AddCase,
                  expect=lambda case, device: Expect(PLANTED, reference_add(case)), run=torch_add)
    fields.update(overrides)
    return Divergence(**fields)


@pytest.fixture
def registered(monkeypatch):
    def install(*entries):
        monkeypatch.setattr(registry, "all_divergences", lambda: tuple(entries))
    return install


def _check(case, actual=None, rule=PLANTED, conform=None):
    c = conform or Conform(device="cpu", out=None, test="t")
    c.check(case, Expect(rule, reference_add(case)), run=torch_add if actual is None else lambda case, device: actual)
    return c.records[rule]


def test_registered_behaviour_counts_as_known_divergence(registered):
    registered(_entry())
    rec = _check(AddCase(1.0, 2.0))
    assert rec.known == 1 and rec.failure is None and rec.divergence == "planted-off-by-one"


def test_outside_the_predicate_the_rule_must_hold(registered):
    registered(_entry())
    with pytest.raises(ConformanceFailure):
        _check(AddCase(-1.0, 2.0))


def test_conforming_inside_the_predicate_is_reported_as_fixed(registered):
    registered(_entry())
    case = AddCase(1.0, 2.0)
    with pytest.raises(ConformanceFailure, match="did not reproduce"):
        _check(case, actual=reference_add(case))


def test_a_different_deviation_is_a_failure(registered):
    registered(_entry())
    with pytest.raises(ConformanceFailure):
        _check(AddCase(1.0, 2.0), actual=Raised("RuntimeError", "boom"))


def test_entry_for_other_builds_or_devices_does_not_apply(registered):
    registered(_entry(torch="<1.0"), _entry(id="other-device", devices=("cuda",)))
    with pytest.raises(ConformanceFailure):
        _check(AddCase(1.0, 2.0))


def test_version_ranges_ignore_local_build_tags():
    assert applies_to_build(">=2.13,<2.15", "2.13.0+cpu")
    assert applies_to_build(">=2.13,<2.15", "2.14.1+cu128")
    assert not applies_to_build(">=2.13,<2.14", "2.14.1")
    assert applies_to_build(">=2.13", "2.15.0a0+git1234"), "nightlies count as the version they lead to"


def test_unregistered_rule_ids_are_rejected():
    with pytest.raises(KeyError):
        Conform(device="cpu", out=None, test="t").check(AddCase(1.0, 2.0), Expect("module.no.such.rule", 1.0),
                                                        run=torch_add)


def test_overlapping_entries_are_an_error_of_the_registry(registered):
    registered(_entry(), _entry(id="planted-overlap", when=lambda case: case.a > 0.5))
    with pytest.raises(OverlappingEntries, match="planted-off-by-one, planted-overlap"):
        _check(AddCase(1.0, 2.0))


def test_a_predicate_that_raises_is_a_bug_of_the_entry_not_a_miss(registered):
    registered(_entry(when=lambda case: case.no_such_field))
    with pytest.raises(AttributeError):
        _check(AddCase(1.0, 2.0))


def test_an_entry_applies_only_to_its_case_type(registered):
    registered(_entry(case_type=int))  # the predicate is never asked about an AddCase
    with pytest.raises(ConformanceFailure):
        _check(AddCase(1.0, 2.0))


def test_an_exception_escaping_the_torch_side_is_an_outcome_of_the_rule():
    def broken(case, device):
        raise ValueError("kernel refused")

    c = Conform(device="cpu", out=None, test="t")
    with pytest.raises(ConformanceFailure, match="ValueError"):
        c.check(AddCase(1.0, 2.0), [Expect(PLANTED, 4.0)], run=broken)
    assert c.records[PLANTED].mismatches[0]["actual"].startswith("Raised(type='ValueError'")


def test_every_expectation_gets_its_own_verdict_from_one_run():
    from tests.planted import HONEST

    calls = []

    def counted(case, device):
        calls.append(case)
        return torch_add(case, device)

    c = Conform(device="cpu", out=None, test="t")
    case = AddCase(1.0, 2.0)
    with pytest.raises(ConformanceFailure, match=PLANTED):
        c.check(case, [Expect(PLANTED, 4.0), Expect(HONEST, 3.0)], run=counted)
    assert len(calls) == 1
    assert c.records[PLANTED].failure and c.records[HONEST].failure is None and c.records[HONEST].examples == 1


def test_an_expectation_compares_only_its_part_of_the_outcome():
    from tests.planted import HONEST

    c = Conform(device="cpu", out=None, test="t")
    c.check(AddCase(1.0, 2.0), [Expect(HONEST, 3.0, key=("sum",))], run=lambda case, device: {"sum": 3.0, "x": 9})
    assert c.records[HONEST].examples == 1 and c.records[HONEST].failure is None


def test_every_registered_entry_is_well_formed():
    from conform.rules import RULES
    from reference import load_all

    load_all()
    for entry in registry.all_divergences():
        assert entry.rule in RULES, entry.id
        assert entry.reason and entry.evidence, entry.id
        assert isinstance(entry.repro, entry.case_type), f"{entry.id}: repro is not a {entry.case_type}"
        assert entry.when(entry.repro), f"{entry.id}: repro does not satisfy its own predicate"
        assert entry.torch_does is not None, f"{entry.id}: torch_does must be a checkable outcome"
        assert entry.expect is not None and entry.run is not None, entry.id
        assert applies_to_build(entry.torch, torch.__version__) in (True, False)


# ---- builds beyond the matrix: `fixed?` instead of a failure, unless --strict-registry ----------------------
def _conform(strict: bool):
    return Conform(device="cpu", out=None, test="t", strict_registry=strict)


def test_beyond_every_measured_release_a_stopped_divergence_is_fixed_maybe(registered, monkeypatch):
    import suite.matrix

    registered(_entry())
    monkeypatch.setattr(suite.matrix, "beyond_measured", lambda version: True)
    case = AddCase(1.0, 2.0)
    rec = _check(case, actual=reference_add(case), conform=_conform(strict=False))
    assert rec.fixed == "planted-off-by-one" and rec.failure is None
    with pytest.raises(ConformanceFailure, match="did not reproduce"):
        _check(case, actual=reference_add(case), conform=_conform(strict=True))


def test_within_the_measured_releases_a_stopped_divergence_fails_even_when_lenient(registered, monkeypatch):
    import suite.matrix

    registered(_entry())
    monkeypatch.setattr(suite.matrix, "beyond_measured", lambda version: False)
    case = AddCase(1.0, 2.0)
    with pytest.raises(ConformanceFailure, match="did not reproduce"):
        _check(case, actual=reference_add(case), conform=_conform(strict=False))


def test_beyond_measured_compares_releases_not_local_tags(tmp_path):
    import json

    from suite.matrix import beyond_measured, load

    (tmp_path / "2.15.0.json").write_text(json.dumps({"release": "2.15.0", "torch": "2.15.0+cu130"}))
    load.cache_clear()
    try:
        assert beyond_measured("2.15.1+cu130", tmp_path) and beyond_measured("2.16.0a0+git", tmp_path)
        assert not beyond_measured("2.15.0+cpu", tmp_path) and not beyond_measured("2.13.1", tmp_path)
    finally:
        load.cache_clear()


def test_also_rules_recognise_the_entry_under_every_affected_rule(registered):
    from tests.planted import PLANTED_TOO

    registered(_entry(also_rules=(PLANTED_TOO,)))
    case = AddCase(1.0, 2.0)
    rec = _check(case, rule=PLANTED_TOO)
    assert rec.known == 1
