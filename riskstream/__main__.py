import sys

from riskstream.ops.cli import main

sys.exit(main())
