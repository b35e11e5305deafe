"""Port of src/core/rng.ts: xoshiro128** seeded by splitmix32, bit for bit.

The whole state is four 32-bit words, saved in checkpoints, so a resume continues the exact
stream; the data order (data.py) and the weight init (model.py) of both engines come from it.
Hand-written rather than numpy's generators: those are different streams.
"""
import math

MASK = 0xFFFFFFFF


def _rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & MASK


def _imul(a, b):
    return (a * b) & MASK


def _splitmix32(seed):
    s = seed & MASK

    def nxt():
        nonlocal s
        s = (s + 0x9E3779B9) & MASK
        z = s
        z = _imul(z ^ (z >> 16), 0x85EBCA6B)
        z = _imul(z ^ (z >> 13), 0xC2B2AE35)
        return (z ^ (z >> 16)) & MASK

    return nxt


class Rng:
    def __init__(self, seed):
        nxt = _splitmix32(seed)
        self.s = [nxt(), nxt(), nxt(), nxt()]
        if not any(self.s):
            self.s[0] = 1

    @staticmethod
    def from_state(state):
        rng = Rng(0)
        rng.s = [int(w) & MASK for w in state]
        return rng

    def state(self):
        return list(self.s)

    def next_uint32(self):
        s = self.s
        result = _imul(_rotl(_imul(s[1], 5), 7), 9)
        t = (s[1] << 9) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 11)
        return result

    def next(self):
        """Uniform in [0, 1) with 32 bits of resolution."""
        return self.next_uint32() / 4294967296

    def int(self, n):
        return math.floor(self.next() * n)

    def normal(self):
        """Box-Muller, one value per call (as rng.ts)."""
        u1 = 1 - self.next()
        u2 = self.next()
        return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)

    def permutation(self, n):
        """A fresh seeded permutation of 0..n-1 (Fisher-Yates, as rng.ts)."""
        p = list(range(n))
        nxt = self.next_uint32
        for i in range(n - 1, 0, -1):
            j = math.floor(nxt() / 4294967296 * (i + 1))
            p[i], p[j] = p[j], p[i]
        return p


def normal_values(rng, count, std):
    """count values rng.normal() * std in order, as floats: Rng.normal inlined (the init draws one
    per weight, and a call per draw is most of the time in Python)."""
    s0, s1, s2, s3 = rng.s
    out = [0.0] * count
    log, sqrt, cos, two_pi = math.log, math.sqrt, math.cos, 2 * math.pi
    for i in range(count):
        u = []
        for _ in range(2):
            r = (((((s1 * 5) & MASK) << 7 | ((s1 * 5) & MASK) >> 25) & MASK) * 9) & MASK
            t = (s1 << 9) & MASK
            s2 ^= s0
            s3 ^= s1
            s1 ^= s2
            s0 ^= s3
            s2 ^= t
            s3 = ((s3 << 11) | (s3 >> 21)) & MASK
            u.append(r / 4294967296)
        out[i] = sqrt(-2 * log(1 - u[0])) * cos(two_pi * u[1]) * std
    rng.s = [s0, s1, s2, s3]
    return out
