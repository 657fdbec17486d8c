#!/usr/bin/env python3
"""Integration test: drives a running kvcache on 127.0.0.1:PORT.

  integration.py --port PORT [--idle N] [--load-seconds S]

Checks round trips, expiry, the key index's growth, eviction under -m (the
server must run with -m 32 to 64: the index check stores 200,000 small
items), and bad clients: half a value then a disconnect, a byte at a
time, negative and huge lengths, an over-long line, N idle connections; a
bounded multi-threaded load with every value verified.  The server must
answer `version` after each.  Ends with "N passed, N failed".
"""
import argparse, random, resource, socket, sys, threading, time

PASSED = FAILED = 0

def check(what, ok):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print("ok   " + what)
    else:
        FAILED += 1
        print("FAIL " + what)

def conn(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def recv_until(s, end, limit=1 << 26):
    buf = bytearray()
    while not buf.endswith(end):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            break
    return bytes(buf)

def cmd(s, data, end=b"\r\n"):
    s.sendall(data)
    return recv_until(s, end)

def alive(port):
    try:
        s = conn(port)
        r = cmd(s, b"version\r\n")
        s.close()
        return r.startswith(b"VERSION ")
    except OSError:
        return False

def stats(port, sub=b""):
    s = conn(port)
    r = cmd(s, b"stats" + (b" " + sub if sub else b"") + b"\r\n", b"END\r\n")
    s.close()
    out = {}
    for line in r.split(b"\r\n"):
        p = line.split(b" ")
        if len(p) == 3 and p[0] == b"STAT":
            out[p[1].decode()] = p[2].decode()
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--load-seconds", type=float, default=3.0)
    a = ap.parse_args()
    port = a.port

    s = conn(port)
    check("set/get round trip", cmd(s, b"set a 5 0 3\r\nabc\r\n") == b"STORED\r\n" and
          cmd(s, b"get a a\r\n", b"END\r\n") == b"VALUE a 5 3\r\nabc\r\nVALUE a 5 3\r\nabc\r\nEND\r\n")
    big = bytes(random.Random(1).randrange(256) for _ in range(1 << 16)) * 15  # ~1 MB - a bit
    big = big[:1000000]
    r = cmd(s, b"set big 0 0 %d\r\n" % len(big) + big + b"\r\n")
    g = cmd(s, b"get big\r\n", b"END\r\n")
    check("a 1 MB value round trip", r == b"STORED\r\n" and g == b"VALUE big 0 %d\r\n" % len(big) + big + b"\r\nEND\r\n")
    check("relative expiry (1 s)", cmd(s, b"set e 0 1 1\r\nx\r\n") == b"STORED\r\n" and
          (time.sleep(2.2) or True) and cmd(s, b"get e\r\n", b"END\r\n") == b"END\r\n")
    check("absolute expiry in the future", cmd(s, b"set f 0 %d 1\r\nx\r\n" % (int(time.time()) + 3600)) == b"STORED\r\n" and
          cmd(s, b"get f\r\n", b"END\r\n") == b"VALUE f 0 1\r\nx\r\nEND\r\n")
    check("negative length", cmd(s, b"set a 0 0 -5\r\n") == b"CLIENT_ERROR bad command line format\r\n")
    check("length 2^32-1 (narrowed to -1, as memcached)", cmd(s, b"set a 0 0 4294967295\r\n") == b"CLIENT_ERROR bad command line format\r\n")
    check("huge length: too large, value swallowed", cmd(s, b"set a 0 0 99999999999\r\n") == b"SERVER_ERROR object too large for cache\r\n")
    s.close()
    s = conn(port)
    check("value longer than announced", cmd(s, b"set a 0 0 1\r\nabc\r\n", b"ERROR\r\n") == b"CLIENT_ERROR bad data chunk\r\nERROR\r\n")
    check("key of 251 bytes", cmd(s, b"get " + b"k" * 251 + b"\r\n") == b"CLIENT_ERROR bad command line format\r\n")
    s.close()

    # half a value, then gone
    s = conn(port)
    s.sendall(b"set half 0 0 100000\r\n" + b"h" * 5000)
    s.close()
    time.sleep(0.2)
    check("half a value then a disconnect: server alive", alive(port))
    s = conn(port)
    check("half a value: nothing stored", cmd(s, b"get half\r\n", b"END\r\n") == b"END\r\n")
    s.close()

    # a byte at a time (bounded: 25 bytes, 0.05 s apart)
    s = conn(port)
    for b in b"set slow 0 0 3\r\nabc\r\n":
        s.sendall(bytes([b]))
        time.sleep(0.05)
    check("a byte at a time", recv_until(s, b"\r\n") == b"STORED\r\n")
    s.close()

    # an over-long line with no newline: closed
    s = conn(port)
    s.sendall(b"x" * 4096)
    try:
        r = s.recv(100)
    except OSError:
        r = b""
    check("2 KiB without a newline (not a get): connection closed", r == b"")
    s.close()

    # idle connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.idle + 100
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
        except (ValueError, OSError):
            pass
    idle = []
    try:
        for _ in range(a.idle):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    except OSError as e:
        print("  (opened %d idle connections: %s)" % (len(idle), e))
    time.sleep(0.5)
    check("%d idle connections open, server answers" % a.idle, len(idle) == a.idle and alive(port))
    for c in idle:
        c.close()
    time.sleep(0.5)

    # the key index grows as memcached's does (items.c: past 3 items per
    # bucket, by the maintainer's 1 s tick), and every item stays found
    st = stats(port)
    p0 = int(st["hash_power_level"])
    n = (3 << p0) + 5000
    s = conn(port)
    for i in range(0, n, 2000):
        s.sendall(b"".join(b"set ix%d 0 0 1 noreply\r\nx\r\n" % j for j in range(i, min(n, i + 2000))))
        cmd(s, b"version\r\n")
    deadline = time.time() + 10
    while time.time() < deadline and int(stats(port)["hash_power_level"]) == p0:
        time.sleep(0.2)
    st = stats(port)
    keys = [b"ix%d" % j for j in range(0, n, 997)]
    r = cmd(s, b"get " + b" ".join(keys) + b"\r\n", b"END\r\n")
    s.close()
    check("key index grown past 3 items per bucket: %d items, hash_power_level %d -> %s, %s hash_bytes" %
          (n, p0, st["hash_power_level"], st["hash_bytes"]),
          int(st["curr_items"]) >= n and int(st["hash_power_level"]) == p0 + 1 and
          int(st["hash_bytes"]) == 16 << (p0 + 1) and r.count(b"VALUE ") == len(keys))

    # eviction under -m: write 3x the limit
    st = stats(port)
    limit = int(st["limit_maxbytes"])
    s = conn(port)
    val = b"v" * 10000
    n = 3 * limit // 10000
    bad = 0
    for i in range(0, n, 100):
        batch = b"".join(b"set fill%d 0 0 %d noreply\r\n" % (j, len(val)) + val + b"\r\n" for j in range(i, min(n, i + 100)))
        s.sendall(batch)
        r = cmd(s, b"version\r\n")
        bad += r != b"VERSION " + r[8:]
    s.close()
    st = stats(port)
    check("eviction: wrote 3x -m, bytes %s <= limit %d, evictions %s" % (st["bytes"], limit, st["evictions"]),
          int(st["bytes"]) <= limit and int(st["evictions"]) > 0 and bad == 0)
    sl = stats(port, b"slabs")
    check("stats slabs shows magpool's per-class figures", any(k.endswith(":in_magazines") for k in sl) and "active_slabs" in sl)

    # load: threads set and get their own keys, values verified
    stop = time.time() + a.load_seconds
    errors = []
    counts = []
    def worker(t):
        rng = random.Random(t)
        c = conn(port)
        n = 0
        while time.time() < stop:
            k = b"t%d_%d" % (t, rng.randrange(200))
            v = k * rng.randrange(1, 40)
            if cmd(c, b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v)) != b"STORED\r\n":
                errors.append("set")
            r = cmd(c, b"get %s\r\n" % k, b"END\r\n")
            if r != b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (k, len(v), v) and r != b"END\r\n":
                errors.append(r[:80])
            n += 2
        c.close()
        counts.append(n)
    ts = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check("load: 8 clients x %.0f s, %d requests, every value intact" % (a.load_seconds, sum(counts)), not errors)
    check("server alive at the end", alive(port))
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 0 if FAILED == 0 else 1

if __name__ == "__main__":
    sys.exit(main())
