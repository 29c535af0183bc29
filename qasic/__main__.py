import sys

from qasic.cli import main

sys.exit(main())
