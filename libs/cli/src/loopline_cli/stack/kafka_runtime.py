"""The Kafka broker's runtime: a Java binary, and its jars resolved from Maven Central once.

The jars go to ``<cache>/kafka-<version>/lib`` (outside the clone, shared by every
run directory and test session); Maven runs only when they are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from loopline_cli.stack.errors import PrerequisiteMissing, StackError

KAFKA_VERSION = "3.9.1"
_SCALA = "2.13"


def lib_dir(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{KAFKA_VERSION}" / "lib"


def jars_present(cache_dir: Path) -> bool:
    lib = lib_dir(cache_dir)
    return (lib / f"kafka_{_SCALA}-{KAFKA_VERSION}.jar").is_file() and any(lib.glob("reload4j-*.jar"))


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin/java").is_file():
        return str(Path(java_home) / "bin/java")
    found = shutil.which("java")
    if found is None:
        raise PrerequisiteMissing(
            "kafka", "binary `java` (Java 17+) on PATH", "apt-get install openjdk-17-jre-headless"
        )
    return found


def maven_binary() -> str:
    found = shutil.which("mvn")
    if found is None:
        hint = f"needed once to fetch Kafka {KAFKA_VERSION} jars; apt-get install maven"
        raise PrerequisiteMissing("kafka", "binary `mvn` on PATH", hint)
    return found


def ensure_jars(cache_dir: Path) -> Path:
    """Resolve the broker's jars into the cache unless they are already there."""
    lib = lib_dir(cache_dir)
    if jars_present(cache_dir):
        return lib
    mvn = maven_binary()
    lib.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".resolve-", dir=lib.parent))
    try:
        pom = staging / "pom.xml"
        pom.write_bytes(resources.files("loopline_cli.stack").joinpath("assets/kafka-pom.xml").read_bytes())
        argv = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging / 'lib'}",
        ]
        done = subprocess.run(argv, cwd=staging, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise StackError(f"kafka: resolving Kafka {KAFKA_VERSION} jars with Maven failed:\n{tail}")
        if lib.exists():
            shutil.rmtree(lib)  # an incomplete earlier attempt
        try:
            (staging / "lib").rename(lib)
        except OSError:
            if not jars_present(cache_dir):  # another session won the race only if the jars are there
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return lib
