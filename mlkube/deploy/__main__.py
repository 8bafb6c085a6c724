import sys

from mlkube.deploy.cli import main

sys.exit(main())
