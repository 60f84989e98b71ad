"""Results, the HTML conformance report, repro scripts and performance records."""
