"""Where torch differs from the documented / clearly intended nn.Module
behaviour, one module per topic.  Each entry's repro is a minimal Case, run
deterministically on every run by suite/test_divergences.py.  What torch does
instead is described here, out of the specification: as a transformation of the
expected outcome, or as the reference's model run through one of its extension
points (a torch-as-built variant).

Every range is measured: the entry's repro, run on each release of the matrix (2.4.1 .. 2.15.0, CPU), reproduces
from the first release of its range on and still on 2.15.0 (so no upper bound).  Below a range the repro needs
an API the release lacks: nn.Buffer (new in 2.5), register_module_forward_hook(with_kwargs=) (new in 2.6).
"""
from suite.module.divergences import containers, hooks, load, single, tree

DIVERGENCES = [*tree.DIVERGENCES, *load.DIVERGENCES, *hooks.DIVERGENCES, *containers.DIVERGENCES,
               *single.DIVERGENCES]
