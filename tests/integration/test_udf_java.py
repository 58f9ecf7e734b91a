"""The JVM decoder's own Java tests (``jobs/udf/src/test``, JUnit): its registry client against local HTTP(S)
servers (unknown id against unavailable registry, the bound on a stalled answer, the cap on remembered
failures, basic auth from a password file, a private CA). Run by Maven's udf-tests profile (the jar build
skips them), in a copy of ``jobs/udf`` so the checkout gets no ``target/``."""

from __future__ import annotations

import shutil
import subprocess
from xml.etree import ElementTree

import pytest

from jobs.jars import UDF_DIR

pytestmark = pytest.mark.integration


def test_the_udf_java_tests_pass(tmp_path):
    mvn = shutil.which("mvn")
    assert mvn, "Maven ('mvn') builds and tests jobs/udf; it is on every machine of this project"
    build = tmp_path / "udf"
    shutil.copytree(UDF_DIR, build, ignore=shutil.ignore_patterns("target"))
    proc = subprocess.run([mvn, "-B", "-q", "-Pudf-tests", "test"], cwd=build, capture_output=True, text=True,
                          timeout=900, check=False)
    reports = sorted((build / "target" / "surefire-reports").glob("TEST-*.xml"))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert reports, "Maven ran no JUnit test"
    suites = [ElementTree.parse(report).getroot() for report in reports]
    assert sum(int(suite.get("tests")) for suite in suites) >= 7
    assert all(suite.get("failures") == "0" and suite.get("errors") == "0" for suite in suites)
