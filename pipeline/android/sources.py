"""Where the demo app's source sets live, and which of them each build compiles.

The runtime glue (src/runtimes/java) needs the LiteRT and ExecuTorch Android libraries, which only a Gradle build
can fetch; every other source compiles against the platform's android.jar alone.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
ANDROID_DEMO = ROOT / "android_demo"
APP_SRC = ANDROID_DEMO / "app" / "src"
MAIN = APP_SRC / "main"
MAIN_JAVA = MAIN / "java"
CORE_JAVA = MAIN_JAVA / "dev" / "phonepipeline" / "demo" / "core"
RUNTIME_GLUE_JAVA = APP_SRC / "runtimes" / "java"
HOST_TEST_JAVA = APP_SRC / "test" / "java"
MANIFEST = MAIN / "AndroidManifest.xml"
RES = MAIN / "res"
ASSETS = MAIN / "assets"
BUNDLE_ASSETS = ASSETS / "bundle"

PACKAGE = "dev.phonepipeline.demo"  # app/build.gradle's namespace and applicationId
VERSION_NAME = "0.1.0"
VERSION_CODE = 1
# The hand build targets the API level of the only android.jar Debian ships (android-23).
SDK_LEVEL = 23


def java_files(*roots: Path) -> list[Path]:
    """All .java files under the given source roots, sorted so builds are reproducible."""
    return sorted(p for root in roots for p in root.rglob("*.java"))
