"""Torch side of the ``norm`` area: runners ``run_<thing>(case, device)``, one module per topic of
reference/norm (they import only torch, numpy, the standard library, ``conform`` and
``suite.norm.cases``: the repro writer inlines what a runner reaches)."""
