import sys

from fpgacnn.cli import main

sys.exit(main())
