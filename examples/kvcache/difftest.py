#!/usr/bin/env python3
"""Differential test: one seeded random command stream sent to kvcache and
to Debian's memcached (both on 127.0.0.1), replies compared byte for byte
after normalising CAS uniques and the VERSION line (stats are not sent).

  difftest.py --kv PORT --mc PORT [--count N] [--seed S] [--trace N]

memcached runs with -o no_lru_maintainer (test.sh): with its segmented LRU,
the second hit on an item bumps it asynchronously, holding a reference
until the maintainer thread's next pass, and an incr/decr meanwhile makes
a new exact-length item where it would otherwise rewrite the value in
place, space-padded: the stored length would depend on thread timing.

After each command a sentinel ("set __s__ ... <n>", "get __s__") is sent on
the same connection; reading stops at its unique reply, so every command's
reply (or its absence, for noreply) is delimited exactly.  Bounded: every
reply has a deadline (WAIT).  Prints mismatches (first 20 in full) and
ends with "N passed, N failed" (1 check: zero mismatches).

A value announced too large is written as "{FILL:n}" and sent as n bytes
of "z" in 1 MiB pieces, never built whole (2**31 bytes announced: both
servers close the connection after a few KiB, and the send fails there).

One reply is not defined in memcached: incr/decr on a value of nothing but
whitespace.  Its strtoull skips the value's own CR LF and reads on into
whatever the slab chunk held before (a number left by an earlier item, or
zeros: non-numeric).  So every incr/decr is preceded by a "get" of its key
(compared like any command); when that value is all whitespace, kvcache
must answer "non-numeric" (memcached's reply on a fresh chunk), memcached's
reply is not compared, and a "delete" of the key (compared) puts both
servers back in step.  Counted and printed as "undefined".

A server that closes a connection with input unread (a line over 2048
bytes) resets it, and the reply lines it wrote just before may or may not
reach us, depending on how the input was split into reads: two replies
that both end in "<CLOSED>" are compared up to the shorter one.
"""
import argparse, random, re, socket, sys, time

FILL = re.compile(rb"\{FILL:(\d+)\}")
ZBLOCK = memoryview(b"z" * (1 << 20))
WHITESPACE = b" \t\n\v\f\r"
NON_NUMERIC = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
WAIT = 30  # seconds for one reply: a loaded 2-core machine stalled both servers past 5

KEYS = ["k%d" % i for i in range(40)] + ["x" * 250, "y" * 251, "u\xe9".encode("latin1").decode("latin1")]

class Server:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.cas = {}
        self.n = 0

    def request(self, data):
        self.n += 1
        token = b"%016d" % self.n
        sentinel = b"set __s__ 0 0 16\r\n" + token + b"\r\nget __s__\r\n"
        want_end = b"STORED\r\nVALUE __s__ 0 16\r\n" + token + b"\r\nEND\r\n"
        try:
            self.send(data + sentinel)
        except ConnectionError:
            return b"<CLOSED>"
        buf = bytearray()
        deadline = time.time() + WAIT
        while not buf[-len(want_end):] == want_end:
            if time.time() > deadline:
                return bytes(buf) + b"<TIMEOUT>"
            try:
                chunk = self.s.recv(1 << 20)
            except socket.timeout:
                return bytes(buf) + b"<TIMEOUT>"
            except ConnectionError:
                return bytes(buf) + b"<CLOSED>"
            if not chunk:
                return bytes(buf) + b"<CLOSED>"
            buf += chunk
        reply = bytes(buf[: -len(want_end)])
        for m in re.finditer(rb"VALUE (\S+) \d+ \d+ (\d+)\r\n", reply):
            self.cas[m.group(1)] = int(m.group(2))
        return reply

    def send(self, data):
        m = FILL.search(data)
        if m is None:
            self.s.sendall(data)
            return
        self.s.sendall(data[: m.start()])
        left = int(m.group(1))
        while left > 0:
            n = min(left, len(ZBLOCK))
            self.s.sendall(ZBLOCK[:n])
            left -= n
        self.s.sendall(data[m.end():])

def norm(reply):
    reply = re.sub(rb"(VALUE \S+ \d+ \d+) \d+\r\n", rb"\1 CAS\r\n", reply)
    reply = re.sub(rb"VERSION [^\r]*\r\n", b"VERSION\r\n", reply)
    return reply

def gen(rng):
    """One request: (bytes with a {CAS} placeholder or not, key)."""
    key = rng.choice(KEYS).encode("latin1")
    nr = b" noreply" if rng.random() < 0.1 else b""
    r = rng.random()
    flags = rng.choice([b"0", b"1", b"4294967295", b"4294967296", b"-1", b"abc"]) if rng.random() < 0.1 else b"%d" % rng.randrange(0, 70000)
    exp = rng.choice([b"0", b"0", b"0", b"-1", b"1000", b"100000", b"2592001", b"1999999999", b"x"])
    def value():
        kind = rng.random()
        if kind < 0.3:
            return b"%d" % rng.choice([0, 1, 9, 10, 99, 12345, 2**64 - 1, 2**64 - 2])
        n = rng.choice([0, 1, 5, 20, 100, 1000, 5000]) if rng.random() < 0.98 else 70000
        return bytes(rng.choice(b"abcdefgh 0123\t") for _ in range(min(n, 64))) * (n // 64 + 1) if n > 64 else bytes(rng.choice(b"abcdefgh 0123") for _ in range(n))
    if r < 0.35:
        cmd = rng.choice([b"set", b"add", b"replace", b"append", b"prepend", b"cas"])
        v = value()
        decl = len(v)
        if rng.random() < 0.03:
            decl = max(0, len(v) - rng.randrange(1, 3))  # value longer than announced
        if rng.random() < 0.01:
            decl = rng.choice([-1, 2**31, 2000000 if rng.random() < 0.2 else -1, 1048576 - 100])
            v = b"{FILL:%d}" % decl if decl > 0 else b""  # too large: sent whole, swallowed
        cas = b" {CAS}" if cmd == b"cas" else b""
        return cmd + b" " + key + b" " + flags + b" " + exp + b" " + b"%d" % decl + cas + nr + b"\r\n" + v + b"\r\n", key
    if r < 0.65:
        n = rng.choice([1, 1, 1, 2, 3, 30])
        keys = b" ".join(rng.choice(KEYS).encode("latin1") for _ in range(n))
        cmd = rng.choice([b"get", b"gets", b"gat", b"gats"])
        if cmd.startswith(b"gat"):
            keys = rng.choice([b"0", b"1000", b"-1", b"q"]) + b" " + keys
        return cmd + b" " + keys + b"\r\n", key
    if r < 0.75:
        d = rng.choice([b"1", b"5", b"0", b"18446744073709551615", b"-1", b"x", b"100"])
        return rng.choice([b"incr", b"decr"]) + b" " + key + b" " + d + nr + b"\r\n", key
    if r < 0.83:
        tail = rng.choice([b"", b"", b" 0", b" 1", nr, b" 0" + nr])
        return b"delete " + key + tail + b"\r\n", key
    if r < 0.90:
        return b"touch " + key + b" " + exp + nr + b"\r\n", key
    if r < 0.91:
        return b"flush_all" + rng.choice([b"", b" 0", b" noreply", b" x", b" -1"]) + b"\r\n", key
    junk = [b"\r\n", b"bogus\r\n", b"get\r\n", b"set k0 0 0\r\n", b"version\r\n", b"verbosity 1\r\n",
            b"verbosity\r\n", b"incr\r\n", b"  get k1  k2 \r\n", b"GET k1\r\n", b"touch k1\r\n",
            b"delete\r\n", b"cas k1 0 0 1\r\n", b"verbosity x noreply\r\n", b"get k1\n", b"g\r\n"]
    return rng.choice(junk), key

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kv", type=int, required=True)
    ap.add_argument("--mc", type=int, required=True)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--trace", type=int, default=0, help="show the last N commands on the key of the first mismatch")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    kv, mc = Server(a.kv), Server(a.mc)
    for s in (kv, mc):
        s.request(b"flush_all\r\n")
    mismatches = undefined = 0
    hist = []
    t0 = time.time()
    def send(i, req, key, fill=None, undefined_reply=False):
        """One request to both, replies compared; returns memcached's."""
        nonlocal kv, mc, mismatches
        fill = fill or (lambda s: req)
        rk, rm = norm(kv.request(fill(kv))), norm(mc.request(fill(mc)))
        hist.append((i, req[:120], rk[:80], rm[:80]))
        if any(t in r for t in (b"<CLOSED>", b"<TIMEOUT>") for r in (rk, rm)):
            kv, mc = Server(a.kv), Server(a.mc)
        got = rm
        if rk.endswith(b"<CLOSED>") and rm.endswith(b"<CLOSED>"):
            n = min(len(rk), len(rm)) - len(b"<CLOSED>")  # reset: a tail may be lost
            rk, rm = rk[:n], rm[:n]
        if undefined_reply:
            rm = rk if rk in (b"", NON_NUMERIC) else rm  # memcached's not compared
        if rk != rm:
            mismatches += 1
            if mismatches == 1 and a.trace:
                for h in hist[-a.trace:]:
                    if key in h[1]:
                        print("  trace", h)
            if mismatches <= 20:
                print("MISMATCH #%d at command %d: %r\n  kvcache:   %r\n  memcached: %r" % (mismatches, i, req[:200], rk[:300], rm[:300]))
        return got
    for i in range(a.count):
        req, key = gen(rng)
        casv = rng.random()
        def fill(s):
            if b"{CAS}" not in req:
                return req
            c = s.cas.get(key, 1) if casv < 0.8 else rng.randrange(0, 10**6) if False else s.cas.get(key, 1) + 1
            return req.replace(b"{CAS}", b"%d" % c)
        blank = False
        if req.startswith((b"incr ", b"decr ")):
            got = send(i, b"get " + key + b"\r\n", key)
            m = re.match(rb"VALUE \S+ \d+ (\d+)\r\n", got)
            blank = m is not None and int(m.group(1)) > 0 and \
                got[m.end(): m.end() + int(m.group(1))].strip(WHITESPACE) == b""
        send(i, req, key, fill, undefined_reply=blank)
        if blank:
            undefined += 1
            send(i, b"delete " + key + b"\r\n", key)
    dt = time.time() - t0
    ok = mismatches == 0
    print("%s difftest: %d commands (seed %d) in %.1f s, %d mismatches, %d undefined" % ("ok  " if ok else "FAIL", a.count, a.seed, dt, mismatches, undefined))
    print("%d passed, %d failed" % (1 if ok else 0, 0 if ok else 1))
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
