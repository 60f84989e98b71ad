"""Root conftest: the torchconform plugin and the hypothesis profiles.

Profiles (select with ``--hypothesis-profile`` or ``torchconform run --profile``):
- ``ci``: deterministic (derandomized), 100 examples a test (the whole run takes
  about 2 minutes on 2 cores), no deadline, no example
  database -- the same run every time, sized for the CI budget on 2 cores;
- ``dev`` (default): random seeds, moderate examples, the local example database
  (``.hypothesis/``) so a failure replays first next time;
- ``fuzz``: many examples, random seeds, database on, for long runs on big machines.
"""
from hypothesis import HealthCheck, Phase, settings

from suite.exampledb import from_environment

pytest_plugins = ["suite.plugin"]

# `conform` deliberately accumulates across the examples of one test: it is the per-rule tally.
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture]

settings.register_profile("ci", max_examples=100, stateful_step_count=25, derandomize=True, deadline=None,
                          database=None, print_blob=True, suppress_health_check=_SLOW_OK)
# `torchconform mutate`: the ci profile's examples (derandomized: the same ones), without shrinking a failure -- a
# mutant is killed by the first failing example, and shrinking a stateful machine's failure can take minutes
settings.register_profile("ci-mutation", settings.get_profile("ci"),
                          phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target))
# `torchconform fuzz --db DIR|redis://...`: every worker (and campaign) shares one example database.
_DB = {"database": db} if (db := from_environment()) is not None else {}
settings.register_profile("dev", max_examples=60, stateful_step_count=25, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_OK, **_DB)
settings.register_profile("fuzz", max_examples=2000, stateful_step_count=60, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_OK, **_DB)
settings.load_profile("dev")
