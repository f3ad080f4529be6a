"""`make demo`: the sentiment sample end to end (train, register, deploy on PROCESS, score)."""

print("make demo: not yet - the sentiment sample lands with its issue.")
