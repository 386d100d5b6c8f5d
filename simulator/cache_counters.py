"""What the two cache simulators (cache.py, cache_fused.py) share: counter columns, policy ids."""

# per-level int64 counters; the last two are kernel state of cache.py carried between chunks
RH, RM, WH, WM, RB, WB, EV, WBK, BIN, BOUT, LAST_LINE, LAST_SLOT = range(12)
N_COUNTERS = 12
LRU, FIFO, RANDOM, OPT = range(4)
POLICY_IDS = {"lru": LRU, "fifo": FIFO, "random": RANDOM, "opt": OPT}
SCAN_MAX_WAYS = 32  # sets this small are scanned; larger ones are hashed


def log2(x: int) -> int:
    """Exponent of a power of two."""
    return x.bit_length() - 1
