"""The run report (report.md, report.json, report.png), built from the manifest alone, and its on-device section."""
