# Shared by the comparison scripts (sourced, not run): a work dir cleaned on exit, free
# ports, and starting redis-server, a single-node Tessera and `tessera up` on loopback.
# Expects BIN (the tessera binary). Sets REDIS_PORT / TESSERA_PORT / UP_PORT.

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ping() {
  for _ in $(seq 1 300); do
    if redis-cli -p "$1" PING 2>/dev/null | grep -q PONG; then return 0; fi
    sleep 0.1
  done
  echo "server on port $1 did not answer" >&2
  return 1
}

# Waits until INFO raft shows a leader for every shard.
wait_leaders() {
  for _ in $(seq 1 300); do
    if redis-cli -p "$1" INFO raft 2>/dev/null | grep -q '^shard' &&
       ! redis-cli -p "$1" INFO raft | grep -q 'leader=0,'; then return 0; fi
    sleep 0.1
  done
  echo "tessera on port $1 has shards without a leader" >&2
  return 1
}

start_redis() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --logfile "$work/redis.log" &
  pids+=($!)
  wait_ping "$REDIS_PORT"
}

stop_redis() { redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; }

start_tessera() {
  TESSERA_PORT=$(free_port)
  # TESSERA_ARGS: extra `tessera server` flags for A/B runs (e.g. "--worker-sched normal").
  # shellcheck disable=SC2086
  "$BIN" server --data-dir "$work/single" --port "$TESSERA_PORT" \
    --raft-addr "127.0.0.1:$(free_port)" ${TESSERA_ARGS:-} 2>"$work/single.log" &
  pids+=($!)
  TESSERA_PID=$!
  wait_leaders "$TESSERA_PORT"
}

stop_tessera() { kill "$TESSERA_PID"; }

# `tessera up` on free ports below the ephemeral range; UP_PORT is the client port of the
# node leading the shard that holds keys starting with the two bytes $1 (hex, e.g. 6b65
# for "ke"): the static layout puts such benchmark keys all in one shard.
start_up() {
  local base
  base=$(python3 - <<'PORTS'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    b = random.randrange(20000, 22000)
    if all(free(b + i) and free(b + 10000 + i) for i in range(3)):
        print(b); break
PORTS
)
  "$BIN" up --dir "$work/up" --base-port "$base" > "$work/up.out" 2>&1 &
  pids+=($!)
  UP_PID=$!
  for _ in $(seq 1 300); do grep -q "Tessera is up" "$work/up.out" && break; sleep 0.1; done
  wait_leaders "$base" || { cat "$work/up.out" >&2; exit 1; }
  local shard leader
  shard=$(python3 -c "print(0x$1 * 8 // 65536 + 1)")
  leader=$(redis-cli -p "$base" INFO raft | tr -d '\r' | sed -n "s/^shard$shard:leader=\([0-9]*\),.*/\1/p")
  echo "shard $shard is led by node $leader" >&2
  UP_PORT=$((base + leader - 1))
}

stop_up() { kill -INT "$UP_PID"; }

machine_facts() {
  local cpu disk
  cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
  disk=$(df -T "$work" | awk 'NR==2 {print $2" on "$1}')
  echo "machine: $cpu, $(nproc) vCPU, Linux $(uname -r), disk $disk"
}
