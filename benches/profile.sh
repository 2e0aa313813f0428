#!/usr/bin/env bash
# Where the encrypted path's CPU goes (issue 5): runs the tunnel bed's "VXLAN over the
# tunnel" path (crates/secnet-tunnel/tests/throughput.rs: two namespaces, kernel VXLAN
# between the tunnel addresses, secnet's engine in each) for one long iperf3 stream,
# records a system-wide perf profile in the middle of it and writes a Markdown summary:
# CPU per thread, each tunnel thread split into cipher / our code / kernel, the top
# symbols, and the kernel paths the tunnel threads spend their time in.
#
#   sudo bash benches/profile.sh [OUTPUT.md]     (default benches/results/<date>-profile.md)
#
# Needs root, perf, iperf3, iproute2. Nothing is configured in the root namespace (the bed
# makes its own). SECNET_PROFILE_SECS (default 8) sets how long perf records.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-benches/results/$(date -u +%F)-profile.md}
secs=${SECNET_PROFILE_SECS:-8}
for tool in perf iperf3 ip; do
    command -v "$tool" >/dev/null || { echo "profile.sh: $tool is missing" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "profile.sh: needs root (network namespaces, perf -a)" >&2; exit 1; }

echo "building the bed (release)..."
cargo build --release --locked -q -p secnet-tunnel --tests
work=$(mktemp -d)
bed=
cleanup() {
    [ -n "$bed" ] && kill "$bed" 2>/dev/null && wait "$bed" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

echo "running one ${secs}+8 s stream over VXLAN in the tunnel..."
SECNET_BENCH_SECS=$((secs + 8)) SECNET_BENCH_ROUNDS=1 SECNET_BENCH_STREAMS=1 \
    SECNET_BENCH_PINGS=20 SECNET_BENCH_PATHS=vxlan-tunnel \
    cargo test --release --locked -q -p secnet-tunnel --test throughput -- --ignored --nocapture \
    >"$work/bed.log" 2>&1 &
bed=$!

# The stream has started once an iperf3 client runs; give it 3 s past slow start.
deadline=$((SECONDS + 120))
until pgrep -f "iperf3 -c" >/dev/null; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$bed" 2>/dev/null; then
        echo "profile.sh: the bed never started iperf3; its log:" >&2
        cat "$work/bed.log" >&2
        exit 1
    fi
    sleep 0.2
done
sleep 3
echo "recording ${secs} s of perf samples..."
perf record -q -a -g -o "$work/perf.data" -- sleep "$secs" 2>"$work/perf.err" || {
    cat "$work/perf.err" >&2
    exit 1
}
wait "$bed"
bed=

perf script -i "$work/perf.data" -F comm,tid,ip,sym,dso 2>/dev/null >"$work/samples.txt"
mkdir -p "$(dirname "$out")"
python3 - "$work/samples.txt" "$work/bed.log" "$secs" "$(git rev-parse --short HEAD)" >"$out" <<'PY'
import collections, os, platform, re, sys

samples_path, bed_log, secs, commit = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]

# perf script with call graphs: a header line per sample, then one frame per line, then a
# blank line. The first frame is where the sample landed; the rest is its call chain.
samples = []  # (comm, tid, [(sym, dso), ...])
with open(samples_path, errors="replace") as f:
    cur = None
    for line in f:
        line = line.rstrip("\n")
        if not line.strip():
            if cur:
                samples.append(cur)
            cur = None
            continue
        if cur is None:
            m = re.match(r"\s*(.+?)\s+(\d+)\s*$", line)
            if m:
                cur = (m.group(1), int(m.group(2)), [])
            continue
        m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
        if m:
            cur[2].append((re.sub(r"\+0x[0-9a-f]+$", "", m.group(1)), m.group(2)))
    if cur:
        samples.append(cur)

total = len(samples)
if total == 0:
    sys.exit("no samples")

def category(frames):
    sym, dso = frames[0] if frames else ("?", "?")
    if "chacha20_poly1305_seal" in sym:
        return "cipher: seal"
    if "chacha20_poly1305_open" in sym:
        return "cipher: open"
    if dso.startswith("[kernel"):
        chain = " ".join(s for s, _ in frames)
        if "tun_chr_write_iter" in chain or "tun_get_user" in chain:
            return "kernel: TUN write and the stack above it"
        if "tun_chr_read_iter" in chain or "tun_do_read" in chain:
            return "kernel: TUN read"
        if "udp_sendmsg" in chain or "__sys_sendmsg" in chain or "sendmmsg" in chain:
            return "kernel: UDP send (incl. delivery to the far socket)"
        if "recvmmsg" in chain or "udp_recvmsg" in chain:
            return "kernel: UDP receive"
        if "do_sys_poll" in chain or "schedule" in chain:
            return "kernel: poll, scheduling"
        return "kernel: other (interrupts, timers)"
    if "secnet_tunnel" in sym:
        return "secnet-tunnel (split, merge, checksums, dispatch)"
    if "boringtun" in sym:
        return "boringtun (outside the cipher)"
    if "memmove" in sym or "memcpy" in sym:
        return "memcpy"
    return "other user space"

by_thread = collections.defaultdict(list)
for comm, tid, frames in samples:
    by_thread[(comm, tid)].append(frames)

ncpu = os.cpu_count() or 1
rate = total / (secs * ncpu)  # samples per CPU-second

def name_of(frames_list):
    seal = sum(1 for fr in frames_list if fr and "seal" in fr[0][0])
    opn = sum(1 for fr in frames_list if fr and "chacha20_poly1305_open" in fr[0][0])
    return "sending end (seals data)" if seal >= opn else "receiving end (opens data)"

print(f"# Profile of the encrypted path, {os.popen('date -u +%F').read().strip()}\n")
print("Produced by `sudo bash benches/profile.sh` (see `benches/README.md`): one iperf3 TCP stream")
print("over kernel VXLAN between the tunnel addresses of two secnet tunnel engines (the tunnel bed,")
print(f"`crates/secnet-tunnel/tests/throughput.rs`), `perf record -a -g` for {secs:.0f} s in the middle of")
print(f"the run, commit {commit}, release build.\n")
cpu = "?"
try:
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip()
            break
except OSError:
    pass
print(f"Machine: {cpu}, {ncpu} vCPUs, Linux {platform.release()}.\n")
result = [l for l in open(bed_log, errors="replace") if l.startswith("| vxlan-tunnel |") and "a→b" in l]
if result:
    cols = [c.strip() for c in result[0].strip().strip("|").split("|")]
    print(f"Throughput during the run: {cols[4]} Gbit/s, tunnel threads {cols[7]} cores.\n")

print("## Where the CPU goes\n")
print("Share of all CPU time (both vCPUs) by thread:\n")
print("| thread | share of the machine | cores |")
print("|---|---|---|")
threads = sorted(by_thread.items(), key=lambda kv: -len(kv[1]))
idle = sum(len(v) for (c, _), v in by_thread.items() if c == "swapper")
shown = 0
for (comm, tid), frames in threads:
    n = len(frames)
    if comm == "swapper" or n / total < 0.01:
        continue
    label = f"{comm} {tid}"
    if comm == "secnet-tunnel":
        label = f"tunnel thread, {name_of(frames)}"
    print(f"| {label} | {100*n/total:.1f}% | {n/rate/secs:.2f} |")
    shown += n
print(f"| idle | {100*idle/total:.1f}% | {idle/rate/secs:.2f} |")
print(f"| everything else | {100*(total-shown-idle)/total:.1f}% | {(total-shown-idle)/rate/secs:.2f} |\n")

# What the kernel VXLAN device itself costs (the question of issue 5's item 3): samples that
# landed in its functions, and samples with any of them on the call chain.
vx_self = sum(1 for _, _, fr in samples if fr and fr[0][0].startswith(("vxlan_", "__vxlan")))
vx_chain = sum(1 for _, _, fr in samples if any(s.startswith(("vxlan_", "__vxlan")) for s, _ in fr))
print(f"Kernel VXLAN device (`vxlan_*` functions): {100*vx_self/total:.2f}% of the machine in")
print(f"their own code, {100*vx_chain/total:.1f}% with one of them anywhere on the call chain")
print("(that includes everything they call: routing, the bridge, the receiving stack).\n")

tunnel_threads = [(k, v) for k, v in threads if k[0] == "secnet-tunnel" and len(v) / total >= 0.01]
for (comm, tid), frames in tunnel_threads:
    n = len(frames)
    print(f"### Tunnel thread, {name_of(frames)}: {n/rate/secs:.2f} cores\n")
    cats = collections.Counter(category(fr) for fr in frames)
    print("| where | share of the thread |")
    print("|---|---|")
    for cat, c in cats.most_common():
        print(f"| {cat} | {100*c/n:.1f}% |")
    print()
    syms = collections.Counter((fr[0][0] if fr else "?") for fr in frames)
    print("Top symbols (self time):\n")
    print("| symbol | share of the thread |")
    print("|---|---|")
    for sym, c in syms.most_common(12):
        print(f"| `{sym}` | {100*c/n:.1f}% |")
    print()
PY
echo "wrote $out"
cat "$out"
