"""Test devices on a machine with no phone: real adbd in Debian chroots (built once, cached), reached by the real adb
client. Run as `python -m pipeline.devices.testbed up|down|status`.
"""
