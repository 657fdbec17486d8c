#!/bin/sh
# Regenerates the seed corpus of stress/fuzz_api.c (deterministic bytes).
# Opcodes (byte % 20): 0 create core cache, 1 destroy, 2-3 alloc, 4-5 free,
# 6 bulk alloc, 7 bulk free, 8 deferred free, 9 shrink, 10 stats, 15 NOWAIT
# alloc (each followed by: cache slot byte, argument byte); 16 mem_pool,
# 17 kmem_cache, 18 kmalloc, 19 flush/synchronize/reap (argument bytes).
set -e
cd "$(dirname "$0")/fuzz_api"
w() { printf "$2" > "$1"; }
# create a 64-byte cache, alloc 3, stats, free 2, stats, destroy with 1 live
w create_alloc_free '\000\000\003\002\000\000\002\000\000\002\000\000\012\000\000\004\000\001\004\000\000\012\000\000\001\000\000'
# ctor cache (size 100 | ctor bit 8 = 12) with magazines 1..1, bulk alloc 8, bulk free 4, deferred, synchronize, stats
w ctor_bulk_deferred '\000\001\034\000\006\001\007\007\001\003\010\001\000\010\001\001\023\001\012\001\000\011\001\000\012\001\000'
# mem_pool create, get, get0, put, destroy with live objects
w mem_pool '\020\040\010\020\000\020\001\020\002\020\000\020\003'
# kmem cache create, alloc, zalloc, bulk 3, free bulk, shrink, destroy
w kmem '\021\003\021\000\021\001\021\104\021\105\021\006\021\007'
# kmalloc small, large, krealloc, kfree, then reap
w kmalloc '\022\000\000\100\022\000\100\000\022\003\001\000\022\002\000\000\022\002\000\000\023\002'
# four caches, interleaved, NOWAIT allocs, flush
w four_caches '\000\000\000\000\001\021\000\002\042\000\003\063\002\000\000\002\001\000\002\002\000\002\003\000\017\000\000\017\001\000\023\000\012\000\000\012\001\000\012\002\000\012\003\000'
