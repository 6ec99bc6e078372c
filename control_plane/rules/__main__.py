import sys

from control_plane.rules.cli import main

sys.exit(main(prog="python -m control_plane.rules"))
