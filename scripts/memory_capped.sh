#!/usr/bin/env bash
# Runs a command under a hard memory limit, in a fresh cgroup, and reports the
# cgroup's peak memory and whether the kernel killed anything.
#
#   scripts/memory_capped.sh [--evict FILE]... LIMIT_MB COMMAND [ARGS...]
#
# --evict FILE drops FILE's pages from the page cache first (posix_fadvise
# DONTNEED), so that reading it is charged to this cgroup and not to whichever
# cgroup read or wrote it before (cached pages stay charged to their first owner).
#
# The limit covers everything the command's processes are charged for (anonymous
# memory and the page cache they fault in; the kernel reclaims clean page cache
# before it kills), swap included where the kernel accounts it. cgroup v2
# (memory.max, memory.swap.max = 0) when /sys/fs/cgroup is unified, else cgroup v1
# (memory.limit_in_bytes, memory.memsw.limit_in_bytes when swap accounting is on).
# Needs root (or a delegated cgroup). Exit status: the command's; 137 when the
# kernel's OOM killer ended it.
set -euo pipefail
evict=()
while [ "${1:-}" = "--evict" ]; do
  [ $# -ge 2 ] || { echo "$0: --evict needs a FILE" >&2; exit 2; }
  evict+=("$2")
  shift 2
done
if [ $# -lt 2 ]; then
  echo "usage: $0 [--evict FILE]... LIMIT_MB COMMAND [ARGS...]" >&2
  exit 2
fi
limit_mb=$1
shift
case "$limit_mb" in '' | *[!0-9]*) echo "$0: LIMIT_MB '$limit_mb' is not a number of MiB" >&2; exit 2 ;; esac
limit=$((limit_mb * 1024 * 1024))
name="lowbit_capped_$$"
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mechanism="cgroup v2 memory.max"
  cg=/sys/fs/cgroup/$name
  mkdir "$cg"
  echo "$limit" > "$cg/memory.max"
  [ -f "$cg/memory.swap.max" ] && echo 0 > "$cg/memory.swap.max"
  peak_file=$cg/memory.peak
  events() { grep -E '^oom_kill ' "$cg/memory.events" | awk '{print $2}'; }
else
  mechanism="cgroup v1 memory.limit_in_bytes"
  cg=/sys/fs/cgroup/memory/$name
  mkdir "$cg"
  echo "$limit" > "$cg/memory.limit_in_bytes"
  if [ -f "$cg/memory.memsw.limit_in_bytes" ]; then
    echo "$limit" > "$cg/memory.memsw.limit_in_bytes"
    mechanism="$mechanism + memsw"
  fi
  peak_file=$cg/memory.max_usage_in_bytes
  events() { grep -E '^oom_kill ' "$cg/memory.oom_control" | awk '{print $2}'; }
fi
for f in "${evict[@]}"; do
  python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)' "$f" || { echo "$0: --evict $f: cannot drop its cached pages" >&2; exit 2; }
done
cleanup() { rmdir "$cg" 2>/dev/null || true; }
trap cleanup EXIT
echo "memory_capped: limit ${limit_mb} MiB ($mechanism)" >&2
start=$(date +%s.%N)
rc=0
bash -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' capped "$cg" "$@" || rc=$?
end=$(date +%s.%N)
peak=$(cat "$peak_file" 2>/dev/null || echo 0)
kills=$(events || echo "?")
awk -v p="$peak" -v l="$limit" -v s="$start" -v e="$end" -v k="$kills" -v rc="$rc" 'BEGIN {
  printf "memory_capped: exit %d, %.1f s wall, cgroup peak %.1f MiB of %.0f MiB, OOM kills %s\n",
         rc, e - s, p / 1048576, l / 1048576, k }' >&2
exit "$rc"
