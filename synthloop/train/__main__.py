"""`python -m synthloop.train <spec.json>`: one process of a training step under `accelerate launch` (see
`synthloop.train.launch`)."""

import sys

from synthloop.train.launch import main

sys.exit(main())
