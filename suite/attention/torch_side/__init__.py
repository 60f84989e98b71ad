"""The torch side of the attention area: runners ``run_<thing>(case, device)``, one module per topic.

Each imports only torch, numpy, the standard library, ``conform`` and ``suite.attention.cases`` (the
repro writer inlines what a runner reaches).
"""
