"""The Android demo app's build without Gradle: Debian's Android tools, the hand-built APK, and host-JVM checks.

- `toolchain`: finds or installs the build tools (bookworm packages, and android.jar / dx from bullseye .debs
  cached under ${XDG_CACHE_HOME:-~/.cache}/phone-pipeline/android).
- `sources`: where the app's source sets live and which of them each build compiles.
- `apk_build`: aapt2 -> javac -> dx -> zipalign -> apksigner, verified.
- `host_jvm`: compiles the app's plain-Java core with its JUnit tests and runs them on this machine's JVM.
"""
