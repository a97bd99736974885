import sys

from tripclick_ops.cli import main

sys.exit(main())
