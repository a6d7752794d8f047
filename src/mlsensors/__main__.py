import sys

from mlsensors.cli.main import main

sys.exit(main())
