"""Compile the demo app's plain-Java core with its host tests and run them on this machine's JVM.

The core package has no Android imports, so javac and JUnit 4 (Debian's junit4 package) are all it needs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.android import sources
from pipeline.core.errors import ToolError
from pipeline.core.proc import run

JUNIT_JARS = (Path("/usr/share/java/junit4.jar"), Path("/usr/share/java/hamcrest-core.jar"))
PREPROCESS_CLI = "dev.phonepipeline.demo.core.PreprocessCli"


def junit_classpath() -> list[Path]:
    missing = [str(j) for j in JUNIT_JARS if not j.is_file()]
    if missing:
        raise ToolError(f"android core tests: {', '.join(missing)} missing: install junit4 (make setup)")
    return list(JUNIT_JARS)


def compile_core(out: Path) -> Path:
    """javac --release 8 the core and its host tests (with PreprocessCli) into `out`; returns `out`."""
    javac = shutil.which("javac")
    if javac is None:
        raise ToolError("android core tests: javac not found: install a JDK (17 works)")
    cp = ":".join(map(str, junit_classpath()))
    files = sources.java_files(sources.CORE_JAVA, sources.HOST_TEST_JAVA)
    run([javac, "--release", "8", "-encoding", "UTF-8", "-Xlint:all", "-Werror", "-cp", cp, "-d", str(out),
         *map(str, files)], what="android core tests: javac", timeout=300)
    return out


def test_classes(classes: Path) -> list[str]:
    """Names of the JUnit test classes compiled into `classes` (files named *Test.class)."""
    return sorted(
        str(p.relative_to(classes).with_suffix("")).replace("/", ".") for p in classes.rglob("*Test.class")
    )


def run_junit(classes: Path) -> str:
    """Runs every test class; raises ToolError naming the failures, returns JUnit's summary line."""
    cp = ":".join([str(classes), *map(str, junit_classpath())])
    proc = run(["java", "-cp", cp, "org.junit.runner.JUnitCore", *test_classes(classes)],
               what="android core tests: JUnit", timeout=300, check=False)
    text = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        err = ToolError(f"android core tests: JUnit failed: {_summary(text)}")
        err.detail = text[-4000:]
        raise err
    return _summary(text)


def preprocess_with_java(classes: Path, metadata: Path, artifact: str, image: Path, out: Path) -> bytes:
    """The tensor the app feeds `artifact` for `image`, as raw little-endian bytes."""
    cp = ":".join([str(classes), *map(str, junit_classpath())])
    run(["java", "-cp", cp, PREPROCESS_CLI, str(metadata), artifact, str(image), str(out)],
        what=f"android core: PreprocessCli {image.name}", timeout=120)
    return out.read_bytes()


def _summary(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.startswith(("OK (", "Tests run:"))]
    return lines[-1] if lines else "no JUnit summary"
