"""`python -m pipeline.devices.testbed up|down|status [NAME]`: see bring_up."""

import sys

from pipeline.devices.testbed.bring_up import main

sys.exit(main(sys.argv[1:]))
