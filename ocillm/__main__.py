import sys

from ocillm.cli import main

sys.exit(main())
