"""The script prints and logs; both end up in the server's log."""

import logging
import sys

logger = logging.getLogger("score")
logging.basicConfig(level=logging.INFO)


def init():
    print("init: loading the model")
    logger.info("init: logging works too")


def run(data):
    print(f"run got {len(data)} characters")
    print("a warning on stderr", file=sys.stderr)
    logger.warning("run: warned")
    return len(data)
