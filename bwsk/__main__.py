import sys

from bwsk.cli import main

sys.exit(main())
