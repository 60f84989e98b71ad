"""The parallel area's torch side: runners ``run_<thing>(case, device)``, one module per topic."""
