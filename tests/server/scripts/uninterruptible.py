"""run() hangs where no signal reaches it (SIGALRM blocked), like a stuck C extension."""

import json
import os
import signal
import time


def init():
    pass


def run(data):
    seconds = json.loads(data).get("hang", 0)
    if seconds:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(seconds)
    return {"pid": os.getpid()}
