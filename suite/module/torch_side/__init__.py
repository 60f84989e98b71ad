"""The torch side of the module area: runners ``run_<thing>(case, device)``, one module per topic.

Each imports only torch, numpy, the standard library, ``conform`` and ``suite.module.cases`` (the
repro writer inlines what a runner reaches).
"""
