#!/usr/bin/env python3
"""The server benchmark (issue 17): kvcache on magpool against the same server
on glibc, jemalloc, tcmalloc, mimalloc (its malloc build, LD_PRELOAD) and
against Debian's memcached, side by side in one run, all on 127.0.0.1.

Normally started by `./bench/run.sh --server` (or `--full`), which installs
the packages, builds the servers and bench/kvclient.c, and then runs

    python3 bench/server.py --kvcache BIN --kvcache-malloc BIN --kvclient BIN [options]

Per point (contender, server threads T, repetition): a fresh server
(`-p PORT -l 127.0.0.1 -t T -m MB`), memcaslap (`-T 2 -c 64`, get:set 9:1,
keys of 32 B, values of 100-1,000 B uniform, `-t S`) for ops/s and the mean
latency of its connections, and at the same time bench/kvclient's probe
(4 more connections, the same mix, 1,000 requests/s each, paced, at nice
-10) for the latency percentiles; the
server's CPU time and `stats` around the run; then SIGTERM.  The
contenders take turns inside each (T, repetition), the order rotated by
one per repetition, and the table shows medians over repetitions.

Memory (per contender, at the smallest T unless --mem-threads): a fresh
server, kvclient fill of N items of 100 B (1 M), RSS and `stats`
curr_items, then `flush_all` and an idle wait (kvcache's maintainer crawls
within a second and shrinks its caches; memcached keeps its slab pages),
RSS again.

Writes OUT/server.csv (one row per measurement), OUT/server.txt (the tables
and issue 17's targets) and OUT/server_{ops,p99,rss}.png/.svg (gnuplot).
`--report-only` redraws the table and plots from an existing server.csv.
Every load is bounded in time, every wait has a timeout, and every server
it starts is stopped (SIGTERM, then SIGKILL after 60 s), also on Ctrl-C.
"""
import argparse
import csv
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

LIBDIR = "/usr/lib/x86_64-linux-gnu"
PRELOADS = {
    "jemalloc": "libjemalloc.so.2",
    "tcmalloc": "libtcmalloc_minimal.so.4",
    "mimalloc": "libmimalloc.so.2",
}
ALL = ["kvcache-magpool", "kvcache-glibc", "kvcache-jemalloc", "kvcache-tcmalloc", "kvcache-mimalloc", "memcached"]
MALLOC_BUILDS = ["kvcache-glibc", "kvcache-jemalloc", "kvcache-tcmalloc", "kvcache-mimalloc"]

FIELDS = [
    "kind", "contender", "threads", "rep", "seconds", "client_threads", "conns", "probe_conns", "probe_rate",
    "status",
    # load (memcaslap)
    "ops_s", "mean_us", "mc_p99_le_us", "mc_max_us", "mc_get_misses",
    # load (kvclient probe)
    "probe_ops_s", "probe_mean_us", "probe_p50_us", "probe_p99_us", "probe_p999_us", "probe_max_us",
    # load (the server)
    "server_ops", "server_cpu_s", "cpu_us_per_op", "rss_after_load_kib",
    # memory
    "items", "item_size", "rss_start_kib", "rss_fill_kib", "bytes_per_item", "added_bytes_per_item",
    "rss_flush_kib", "rss_idle_kib", "idle_s", "items_after_flush",
    "shutdown",
]

live = {}  # pid -> Popen of every server started and not yet stopped


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Server:
    def __init__(self, args, name, threads, logdir):
        self.name = name
        self.port = free_port()
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        self.want_lib = None
        common = ["-p", str(self.port), "-l", "127.0.0.1", "-t", str(threads), "-m", str(args.memory_mb)]
        if name == "memcached":
            cmd = [args.memcached] + common + ["-U", "0"]
            if os.geteuid() == 0:
                cmd += ["-u", "root"]
        elif name == "kvcache-magpool":
            cmd = [args.kvcache] + common
        else:
            cmd = [args.kvcache_malloc] + common
            alloc = name.split("-", 1)[1]
            if alloc in PRELOADS:
                self.want_lib = os.path.join(LIBDIR, PRELOADS[alloc])
                env["LD_PRELOAD"] = self.want_lib
        self.errpath = os.path.join(logdir, f"{name}-t{threads}-{self.port}.log")
        self.errf = open(self.errpath, "w")
        self.p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=self.errf, stderr=self.errf)
        live[self.p.pid] = self.p
        self.pid = self.p.pid

    def wait_ready(self, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            if self.p.poll() is not None:
                return "exited"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            return "no_listen"
        if self.want_lib:
            try:
                with open(f"/proc/{self.pid}/maps") as f:
                    if os.path.basename(self.want_lib) not in f.read():
                        return "preload_not_mapped"
            except OSError:
                return "exited"
        return "ok"

    def stop(self):
        """SIGTERM, wait up to 60 s, SIGKILL; returns a short shutdown word."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=60)
            word = f"exit{rc}"
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(timeout=10)
            word = "killed"
        live.pop(self.pid, None)
        self.errf.close()
        if self.name.startswith("kvcache"):
            try:
                with open(self.errpath) as f:
                    text = f.read()
                if ": clean" in text and word == "exit0":
                    word = "clean"
            except OSError:
                pass
        return word


def kvclient(args, *a, timeout=60, nice=0):
    def pre():
        try:
            os.nice(nice)
        except OSError:
            pass  # not root: the probe runs at normal priority
    r = subprocess.run([args.kvclient] + [str(x) for x in a], capture_output=True, text=True, timeout=timeout,
                       preexec_fn=pre if nice else None)
    return r.returncode, r.stdout, r.stderr


def server_stats(args, port):
    try:
        rc, out, _ = kvclient(args, "stats", "--port", port, timeout=20)
    except subprocess.TimeoutExpired:
        return {}
    d = {}
    for line in out.splitlines():
        k, _, v = line.partition(" ")
        d[k] = v
    return d


def kv_pairs(line):
    return {k: v for k, v in re.findall(r"(\w+)=(\S+)", line)}


def parse_memcaslap(text):
    """TPS and the 'Total Statistics' block: Avg, Max, and the p99's log2
    bucket (latencies in [2^k, 2^(k+1)) us; its upper bound is returned)."""
    r = {}
    m = re.search(r"Run time: ([\d.]+)s Ops: (\d+) TPS: (\d+)", text)
    if m:
        r["secs"], r["ops"], r["tps"] = float(m.group(1)), int(m.group(2)), int(m.group(3))
    m = re.search(r"get_misses: (\d+)", text)
    if m:
        r["get_misses"] = int(m.group(1))
    i = text.rfind("Total Statistics (")
    if i >= 0:
        block = text[i:]
        m = re.search(r"Avg:\s+([\d.]+)", block)
        if m:
            r["avg_us"] = float(m.group(1))
        m = re.search(r"Max:\s+(\d+)", block)
        if m:
            r["max_us"] = int(m.group(1))
        buckets = {}
        j = block.find("Log2 Dist:")
        for line in block[j:].splitlines()[1:]:
            m = re.match(r"\s+(\d+):\s+([\d\s]+)$", line)
            if not m:
                break
            base = int(m.group(1))
            for k, n in enumerate(m.group(2).split()):
                buckets[base + k] = int(n)
        total = sum(buckets.values())
        if total:
            acc = 0
            for k in sorted(buckets):
                acc += buckets[k]
                if acc >= 0.99 * total:
                    r["p99_le_us"] = 2 ** (k + 1)
                    break
    return r


def write_cfg(path):
    # memcaslap -F: key sizes, value sizes (min max proportion), commands
    # (0 set, 1 get, with proportions)
    with open(path, "w") as f:
        f.write("key\n32 32 1\nvalue\n100 1000 1\ncmd\n0 0.1\n1 0.9\n")


def with_server(args, name, threads, logdir, row, measure):
    """Start a fresh server, run measure(srv) once it answers (its row), and
    stop it whatever happens; a server that never became ready leaves its
    status in row."""
    srv = Server(args, name, threads, logdir)
    try:
        st = srv.wait_ready()
        if st != "ok":
            row["status"] = st
            return row
        return measure(srv)
    finally:
        row["shutdown"] = srv.stop()


def load_point(args, name, threads, rep, cfg, logdir):
    row = {"kind": "load", "contender": name, "threads": threads, "rep": rep, "seconds": args.seconds,
           "client_threads": args.client_threads, "conns": args.conns, "probe_conns": args.probe_conns,
           "probe_rate": args.probe_rate}

    def measure(srv):
        s0 = server_stats(args, srv.port)
        c0 = cpu_s(srv.pid)
        mc_out = os.path.join(logdir, f"memcaslap-{name}-t{threads}-r{rep}.txt")
        with open(mc_out, "w") as f:
            mc = subprocess.Popen(
                ["timeout", str(int(args.seconds) + 60), args.memcaslap, "-s", f"127.0.0.1:{srv.port}",
                 "-F", cfg, "-t", f"{int(args.seconds)}s", "-S", f"{int(args.seconds)}s",
                 "-T", str(args.client_threads), "-c", str(args.conns)],
                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        live[mc.pid] = mc
        warm = min(2000, int(args.seconds * 100))
        try:
            prc, pout, perr = kvclient(args, "probe", "--port", srv.port, "--conns", args.probe_conns,
                                       "--seconds", max(1.0, args.seconds - 1), "--warmup-ms", warm,
                                       "--seed", rep + 1, "--rate", args.probe_rate, timeout=args.seconds + 60, nice=args.probe_nice)
        except subprocess.TimeoutExpired:
            prc, pout, perr = 1, "", "timeout"
        try:
            mrc = mc.wait(timeout=args.seconds + 90)
        except subprocess.TimeoutExpired:
            mc.kill()
            mrc = mc.wait()
        live.pop(mc.pid, None)
        c1 = cpu_s(srv.pid)
        s1 = server_stats(args, srv.port)
        row["rss_after_load_kib"] = rss_kib(srv.pid)
        with open(mc_out) as f:
            m = parse_memcaslap(f.read())
        status = []
        if mrc != 0 or "tps" not in m:
            status.append(f"memcaslap_rc{mrc}")
        if prc != 0:
            status.append("probe_" + (perr.strip().replace(" ", "_")[:40] or f"rc{prc}"))
        row["ops_s"] = m.get("tps")
        row["mean_us"] = m.get("avg_us")
        row["mc_p99_le_us"] = m.get("p99_le_us")
        row["mc_max_us"] = m.get("max_us")
        row["mc_get_misses"] = m.get("get_misses")
        p = kv_pairs(pout)
        row["probe_ops_s"] = p.get("ops_per_s")
        row["probe_mean_us"] = p.get("mean_us")
        row["probe_p50_us"] = p.get("p50_us")
        row["probe_p99_us"] = p.get("p99_us")
        row["probe_p999_us"] = p.get("p999_us")
        row["probe_max_us"] = p.get("max_us")
        if p.get("errors", "0") != "0":
            status.append(f"probe_errors{p['errors']}")
        try:
            ops = sum(int(s1[k]) - int(s0[k]) for k in ("cmd_get", "cmd_set"))
            row["server_ops"] = ops
        except (KeyError, ValueError):
            ops = None
        if c0 is not None and c1 is not None:
            row["server_cpu_s"] = round(c1 - c0, 2)
            if ops:
                row["cpu_us_per_op"] = round((c1 - c0) * 1e6 / ops, 2)
        row["status"] = "ok" if not status else "+".join(status)
        return row

    return with_server(args, name, threads, logdir, row, measure)


def memory_point(args, name, threads, logdir):
    row = {"kind": "memory", "contender": name, "threads": threads, "rep": 0, "idle_s": args.idle,
           "item_size": args.item_size}

    def measure(srv):
        time.sleep(0.5)
        row["rss_start_kib"] = rss0 = rss_kib(srv.pid)
        try:
            frc, fout, ferr = kvclient(args, "fill", "--port", srv.port, "--items", args.items,
                                       "--size", args.item_size, "--conns", 2, "--max-seconds", 240, timeout=300)
        except subprocess.TimeoutExpired:
            frc, fout, ferr = 1, "", "timeout"
        time.sleep(1)
        st = server_stats(args, srv.port)
        items = int(st.get("curr_items", 0))
        row["items"] = items
        row["rss_fill_kib"] = rss1 = rss_kib(srv.pid)
        if items and rss1:
            row["bytes_per_item"] = round(rss1 * 1024 / items, 1)
            row["added_bytes_per_item"] = round((rss1 - rss0) * 1024 / items, 1)
        kvclient(args, "cmd", "--port", srv.port, "flush_all", timeout=20)
        time.sleep(2)
        row["rss_flush_kib"] = rss_kib(srv.pid)
        time.sleep(max(0, args.idle - 2))
        row["rss_idle_kib"] = rss_kib(srv.pid)
        row["items_after_flush"] = server_stats(args, srv.port).get("curr_items")
        row["status"] = "ok" if frc == 0 and items == args.items else f"fill_rc{frc}_items{items}"
        return row

    return with_server(args, name, threads, logdir, row, measure)


# ---- report ----------------------------------------------------------------------

def fnum(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def med(rows, key):
    vals = [fnum(r.get(key)) for r in rows]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, nd=0):
    if v is None:
        return "-"
    return f"{v:,.{nd}f}"


def report(rows, out, meta):
    load = [r for r in rows if r["kind"] == "load"]
    mem = [r for r in rows if r["kind"] == "memory"]
    names = [n for n in ALL if any(r["contender"] == n for r in rows)]
    threads = sorted({int(r["threads"]) for r in load})
    secs = sorted({fnum(r["seconds"]) for r in load})
    reps = len({r["rep"] for r in load})
    agg = {}  # (name, T) -> dict of medians
    for n in names:
        for t in threads:
            ok = [r for r in load if r["contender"] == n and int(r["threads"]) == t and r["status"] == "ok"]
            bad = [r for r in load if r["contender"] == n and int(r["threads"]) == t and r["status"] != "ok"]
            agg[(n, t)] = {k: med(ok, k) for k in ("ops_s", "mean_us", "mc_p99_le_us", "probe_p99_us",
                                                    "probe_mean_us", "cpu_us_per_op")}
            agg[(n, t)]["n"] = len(ok)
            ops = [fnum(r.get("ops_s")) for r in ok if fnum(r.get("ops_s"))]
            p99 = [fnum(r.get("probe_p99_us")) for r in ok if fnum(r.get("probe_p99_us"))]
            agg[(n, t)]["ops_spread"] = (100 * (max(ops) - min(ops)) / 2 / statistics.median(ops)
                                         if len(ops) > 1 else None)
            agg[(n, t)]["p99_range"] = f"{min(p99):,.0f}-{max(p99):,.0f}" if len(p99) > 1 else "-"
            agg[(n, t)]["bad"] = sorted({r["status"] for r in bad})
    L = []
    sec_txt = "/".join(f"{s:g}" for s in secs if s is not None)
    short = any(s is not None and s < 20 for s in secs)
    L.append(f"== server (issue 17): {meta} ==")
    L.append(f"load: memcaslap -T {load[0]['client_threads'] if load else '-'} -c {load[0]['conns'] if load else '-'} "
             f"(get:set 9:1, keys 32 B, values 100-1,000 B uniform), {sec_txt} s per point"
             f"{' (SHORT run: < 20 s per point, the full setting is 20 s)' if short else ''}, "
             f"{reps} repetition(s), median;")
    if load:
        L.append(f"+ kvclient probe: {load[0]['probe_conns']} connections x {fnum(load[0].get('probe_rate')) or 0:g} "
                 f"requests/s (paced), the same mix, for the latency percentiles")
    L.append("127.0.0.1; client and server share the machine's 2 cores (the client takes about half the CPU)")
    L.append("")
    L.append("columns: ops/s = memcaslap's TPS (its connections only); mean = memcaslap's average latency;")
    L.append("  p99 = kvclient probe's 99th percentile (1 us histogram); mc-p99 = memcaslap's log2 histogram bucket")
    L.append("  holding its p99 (an upper bound, factor-2 resolution); cpu/op = server CPU time (utime+stime)")
    L.append("  per request the server counted (stats cmd_get+cmd_set); +-% = half the ops/s range over the")
    L.append("  repetitions, p99 range = min-max of the repetitions' p99")
    L.append("")
    hdr = (f"{'contender':<18} {'T':>2} {'ops/s':>10} {'+-%':>5} {'mean us':>8} {'p99 us':>8} {'p99 range':>13} "
           f"{'mc-p99<=':>9} {'cpu us/op':>9}  runs")
    L.append(hdr)
    L.append("-" * len(hdr))
    for t in threads:
        for n in names:
            a = agg[(n, t)]
            extra = "" if not a["bad"] else "  failed: " + ",".join(a["bad"])
            L.append(f"{n:<18} {t:>2} {fmt(a['ops_s']):>10} {fmt(a['ops_spread'], 1):>5} {fmt(a['mean_us']):>8} "
                     f"{fmt(a['probe_p99_us']):>8} {a['p99_range']:>13} "
                     f"{fmt(a['mc_p99_le_us']):>9} {fmt(a['cpu_us_per_op'], 2):>9}  {a['n']}{extra}")
        L.append("")
    memd = {}
    if mem:
        mt = sorted({int(r["threads"]) for r in mem})
        it = sorted({r.get("items") for r in mem if r.get("items")})
        idle = sorted({r.get("idle_s") for r in mem})
        L.append(f"memory: fill with {meta_items(mem)} items of {item_size(mem)} B (kvclient fill, pipelined), -t {','.join(map(str, mt))}; "
                 f"then flush_all and {','.join(map(str, idle))} s idle")
        hdr = (f"{'contender':<18} {'T':>2} {'items':>9} {'RSS start':>9} {'RSS full':>9} {'B/item':>7} "
               f"{'added B/item':>12} {'RSS flush':>9} {'RSS idle':>9}  (MiB)")
        L.append(hdr)
        L.append("-" * len(hdr))
        for r in mem:
            def mib(k):
                v = fnum(r.get(k))
                return None if v is None else v / 1024
            L.append(f"{r['contender']:<18} {r['threads']:>2} {fmt(fnum(r.get('items'))):>9} {fmt(mib('rss_start_kib'), 1):>9} "
                     f"{fmt(mib('rss_fill_kib'), 1):>9} {fmt(fnum(r.get('bytes_per_item')), 1):>7} "
                     f"{fmt(fnum(r.get('added_bytes_per_item')), 1):>12} {fmt(mib('rss_flush_kib'), 1):>9} "
                     f"{fmt(mib('rss_idle_kib'), 1):>9}  {r['status'] if r['status'] != 'ok' else ''}")
            if r["status"] == "ok":
                memd.setdefault(r["contender"], r)
        L.append("B/item = RSS when full / curr_items; added = (RSS full - RSS at start) / curr_items;")
        L.append("RSS flush = 2 s after flush_all, RSS idle = after the idle wait")
        L.append("")
    # targets
    L.append("== issue 17 targets (kvcache-magpool) ==")

    def verdict(ok):
        return "n/a " if ok is None else ("PASS" if ok else "MISS")

    mp = "kvcache-magpool"
    for t in threads:
        a, b = agg.get((mp, t), {}), agg.get(("memcached", t), {})
        x, y = a.get("ops_s"), b.get("ops_s")
        ok = None if x is None or y is None else x >= y
        L.append(f"  {verdict(ok)}  throughput >= memcached at {t} threads: {fmt(x)} vs {fmt(y)} ops/s"
                 f"{'' if ok is None else f' ({x / y:.2f}x)'}")
    for t in threads:
        a, b = agg.get((mp, t), {}), agg.get(("memcached", t), {})
        x, y = a.get("probe_p99_us"), b.get("probe_p99_us")
        ok = None if x is None or y is None else x <= y
        L.append(f"  {verdict(ok)}  p99 latency <= memcached's at {t} threads: {fmt(x)} vs {fmt(y)} us (probe)")
    x = fnum(memd.get(mp, {}).get("bytes_per_item"))
    y = fnum(memd.get("memcached", {}).get("bytes_per_item"))
    ok = None if x is None or y is None else x <= y
    L.append(f"  {verdict(ok)}  RSS per {item_size(mem)}-byte item <= memcached's: {fmt(x, 1)} vs {fmt(y, 1)} B")
    for t in threads:
        x = agg.get((mp, t), {}).get("ops_s")
        best = max(((agg[(n, t)]["ops_s"], n) for n in MALLOC_BUILDS if (n, t) in agg and agg[(n, t)]["ops_s"]),
                   default=None)
        ok = None if x is None or best is None else x >= best[0]
        L.append(f"  {verdict(ok)}  throughput >= the best malloc build at {t} threads: {fmt(x)} vs "
                 f"{fmt(best[0]) if best else '-'} ops/s ({best[1] if best else '-'})")
    if short:
        L.append("  (short run: a MISS or PASS by a few percent is within this machine's noise)")
    text = "\n".join(L) + "\n"
    with open(os.path.join(out, "server.txt"), "w") as f:
        f.write(text)
    print(text, end="")
    plot(out, names, threads, agg, mem)


def meta_items(mem):
    v = sorted({r.get("items") for r in mem if r.get("items")})
    return ",".join(f"{int(fnum(x)):,}" for x in v) if v else "-"


def item_size(mem):
    v = sorted({str(r.get("item_size") or 100) for r in mem})
    return ",".join(v) if v else "100"


def plot(out, names, threads, agg, mem):
    if not shutil.which("gnuplot"):
        log("server: gnuplot missing: no plots")
        return
    dat = os.path.join(out, "data")
    os.makedirs(dat, exist_ok=True)
    n = 0
    for key, ylabel, fn, title in (
            ("ops_s", "ops/s (memcaslap TPS, median)", "server_ops", "throughput, get:set 9:1, 100-1000 B values"),
            ("probe_p99_us", "p99 latency, us (kvclient probe, median)", "server_p99", "p99 latency under the same load")):
        f = os.path.join(dat, fn + ".dat")
        with open(f, "w") as d:
            d.write("# contender " + " ".join(f"T{t}" for t in threads) + "\n")
            for nm in names:
                vals = [agg[(nm, t)][key] for t in threads]
                d.write(f'"{nm}" ' + " ".join("0" if v is None else f"{v:.1f}" for v in vals) + "\n")
        cols = ", ".join(f'"" using {i + 2}:xtic(1) title "{t} server threads"' for i, t in enumerate(threads))
        cols = cols.replace('""', f'"{f}"', 1)
        xr = f"set xrange [-0.6:{len(names) - 0.4}]"
        for term in ("png", "svg"):
            t = 'pngcairo size 1000,600 font ",10"' if term == "png" else "svg size 1000,600 dynamic"
            script = f"""set terminal {t}
set output "{out}/{fn}.{term}"
set title "server (issue 17): {title}\\n127.0.0.1, client and server on the same 2 cores"
set style data histogram
set style histogram cluster gap 1
{xr}
set style fill solid 0.7
set boxwidth 0.9
set xtics rotate by -20
set ylabel "{ylabel}"
set yrange [0:*]
set grid y
set key below
set termoption noenhanced
plot {cols}
"""
            subprocess.run(["gnuplot"], input=script, text=True, check=False)
        n += 1
    okmem = [r for r in mem if r["status"] == "ok"]
    if okmem:
        f = os.path.join(dat, "server_rss.dat")
        with open(f, "w") as d:
            for r in okmem:
                d.write(f'"{r["contender"]} -t{r["threads"]}" {r["bytes_per_item"]} '
                        f'{fnum(r["rss_idle_kib"]) / 1024:.1f}\n')
        for term in ("png", "svg"):
            t = 'pngcairo size 1000,600 font ",10"' if term == "png" else "svg size 1000,600 dynamic"
            script = f"""set terminal {t}
set output "{out}/server_rss.{term}"
set title "server (issue 17): RSS per stored {item_size(okmem)}-byte item (bars), RSS after flush_all + idle wait (points)"
set style data histogram
set style fill solid 0.6
set boxwidth 0.8
set xtics rotate by -20
set ylabel "RSS bytes per item ({meta_items(okmem)} items of {item_size(okmem)} B)"
set y2label "MiB after flush_all + idle"
set y2tics
set ytics nomirror
set yrange [0:*]
set y2range [0:*]
set xrange [-0.6:{len(okmem) - 0.4}]
set grid y
set key below
set termoption noenhanced
plot "{f}" using 2:xtic(1) title "bytes per item", "" using 0:3 axes x1y2 with points pt 7 ps 1.5 title "MiB after flush + idle"
"""
            subprocess.run(["gnuplot"], input=script, text=True, check=False)
        n += 1
    log(f"server: {n} figures (PNG + SVG) in {out}/")


# ---- main -------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kvcache", default="bazel-bin/examples/kvcache/kvcache")
    ap.add_argument("--kvcache-malloc", default="bazel-bin/examples/kvcache/kvcache_malloc")
    ap.add_argument("--kvclient", default="bench/out/obj/kvclient")
    ap.add_argument("--memcached", default=shutil.which("memcached") or "memcached")
    ap.add_argument("--memcaslap", default=shutil.which("memcaslap") or "memcaslap")
    ap.add_argument("--out", default="bench/out")
    ap.add_argument("--seconds", type=float, default=20, help="memcaslap run per point (20)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per point, median (3)")
    ap.add_argument("--threads", default="2,8", help="server worker threads (-t), comma list (2,8)")
    ap.add_argument("--conns", type=int, default=64, help="memcaslap connections (-c, 64)")
    ap.add_argument("--client-threads", type=int, default=2, help="memcaslap threads (-T, 2)")
    ap.add_argument("--probe-conns", type=int, default=4, help="kvclient probe connections (4)")
    ap.add_argument("--probe-rate", type=float, default=1000,
                    help="probe requests per second per connection, paced (1000; 0: back to back)")
    ap.add_argument("--probe-nice", type=int, default=-10,
                    help="nice increment of the probe (-10: its wake-ups do not wait behind memcaslap; 0: none)")
    ap.add_argument("--memory-mb", type=int, default=1024, help="-m for every server (1024)")
    ap.add_argument("--items", type=int, default=1000000, help="memory phase: items of --item-size B (1000000)")
    ap.add_argument("--item-size", type=int, default=100)
    ap.add_argument("--idle", type=float, default=15, help="memory phase: idle seconds after flush_all (15)")
    ap.add_argument("--mem-threads", default=None, help="memory phase at these -t (default: the smallest --threads)")
    ap.add_argument("--contenders", default=",".join(ALL))
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-load", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="redraw server.txt and plots from server.csv")
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    csvpath = os.path.join(out, "server.csv")
    if args.report_only:
        with open(csvpath) as f:
            rows = list(csv.DictReader(f))
        report(rows, out, "report redrawn from server.csv")
        return 0
    if not (1 <= args.seconds <= 600 and 1 <= args.reps <= 20 and 1 <= args.conns <= 1000
            and 0 <= args.idle <= 600 and 1 <= args.items <= 20000000):
        ap.error("option out of range")
    threads = [int(x) for x in args.threads.split(",") if x]
    mem_threads = [int(x) for x in args.mem_threads.split(",")] if args.mem_threads else [min(threads)]
    names = [n for n in args.contenders.split(",") if n]
    for n in names:
        if n not in ALL:
            ap.error(f"unknown contender {n} (known: {', '.join(ALL)})")
    for tool in (args.kvclient, args.memcaslap):
        if not shutil.which(tool) and not os.access(tool, os.X_OK):
            log(f"server: {tool} missing")
            return 1
    usable = []
    for n in names:
        need = {"memcached": args.memcached, "kvcache-magpool": args.kvcache}.get(n, args.kvcache_malloc)
        lib = PRELOADS.get(n.split("-", 1)[1]) if n.startswith("kvcache-") else None
        if not (shutil.which(need) or os.access(need, os.X_OK)):
            log(f"server: {n}: {need} missing: skipped")
        elif lib and not os.path.exists(os.path.join(LIBDIR, lib)):
            log(f"server: {n}: {LIBDIR}/{lib} missing: skipped")
        else:
            usable.append(n)
    logdir = os.path.join(out, "server_logs")
    shutil.rmtree(logdir, ignore_errors=True)
    os.makedirs(logdir)
    cfg = os.path.join(logdir, "memcaslap.cfg")
    write_cfg(cfg)

    def on_signal(sig, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    rows = []
    try:
        with open(csvpath, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
            w.writeheader()

            def emit(row):
                rows.append(row)
                w.writerow(row)
                f.flush()
            t0 = time.time()
            if not args.no_load:
                for rep in range(args.reps):
                    for t in threads:
                        order = usable[rep % len(usable):] + usable[:rep % len(usable)]
                        for n in order:
                            row = load_point(args, n, t, rep, cfg, logdir)
                            emit(row)
                            log(f"server: load {n} -t {t} rep {rep + 1}/{args.reps}: {row.get('status')} "
                                f"{fmt(fnum(row.get('ops_s')))} ops/s, mean {row.get('mean_us')} us, "
                                f"probe p99 {row.get('probe_p99_us')} us, cpu/op {row.get('cpu_us_per_op')} us, "
                                f"shutdown {row.get('shutdown')} ({time.time() - t0:.0f} s)")
            if not args.no_memory:
                for t in mem_threads:
                    for n in usable:
                        row = memory_point(args, n, t, logdir)
                        emit(row)
                        log(f"server: memory {n} -t {t}: {row.get('status')} {row.get('items')} items, "
                            f"{row.get('bytes_per_item')} B/item, idle RSS {row.get('rss_idle_kib')} KiB "
                            f"({time.time() - t0:.0f} s)")
    finally:
        for p in list(live.values()):
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        live.clear()
    meta = (f"{len(usable)} contenders, -t {','.join(map(str, threads))}, -m {args.memory_mb}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}")
    report(rows, out, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
