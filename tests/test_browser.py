"""The HTML report in a real headless browser (Debian's chromium): it loads without
JavaScript errors and shows every area.  Skipped where no chromium is installed
(.ci/run installs it)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from conform.rules import AREAS
from reports.html import load_run, render_report
from tests.test_report import FAIL_DETAIL, results, rule

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(BROWSER is None, reason="no chromium on this machine (apt-get install -y chromium)")
@pytest.mark.timeout(120)
def test_report_loads_without_js_errors_and_shows_every_area(tmp_path):
    rules = [rule("module.a", "cpu", "pass"), rule("module.b", "cpu", "fail", detail=FAIL_DETAIL, repro="repro/b.py"),
             rule("data.c", "cpu", "known_divergence", detail="module.div.one: torch differs"),
             rule("norm.d", "cpu", "skipped", 0, "no test recorded this rule")]
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(results("2.13.0+cpu", rules)))
    page = render_report([load_run(run)], run)
    proc = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'p'}",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    # The page's script runs last and marks the body: it ran to the end without throwing.
    assert 'data-ready="1"' in dom, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines()
              if "CONSOLE" in line and re.search("error|Uncaught", line, re.I)]
    assert not errors, errors
    assert re.search(r"\d+ of 4 rules shown", dom)  # the filter script filled in its counter
    summary = dom[dom.index('id="summary-table"'):]
    summary = summary[:summary.index("</table>")]
    for area in AREAS:
        assert f'data-area="{area}"' in summary, area
    assert "module.b" in dom and "Failures (1)" in dom
