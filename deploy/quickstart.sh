#!/usr/bin/env bash
# deploy/quickstart.sh: set up this machine and run parkwatch end to end.
#
#   1. deploy/setup.sh (packages, ONNX Runtime, detector weights, test video)
#   2. cargo build --release of parkwatch-edge, parkwatch-ingest and parkctl
#   3. starts, on 127.0.0.1:
#        VictoriaMetrics               :8428  (time series, InfluxDB v2 write API)
#        deploy/rtsp-server.py          :8554  (three looping cameras from real video)
#        parkwatch-ingest               :1883 MQTT (embedded broker), :8080 HTTP
#        parkwatch-edge (edge-p01)     :9108 /metrics
#      with deploy/quickstart/{ingest,edge}.toml
#   4. waits until camera telemetry is queryable, the first alarm is raised
#      and ingest opened its incident, prints where to look (parkctl tail,
#      the incident API), and keeps running until Ctrl-C.
#
# Options:
#   --check        exit 0 once telemetry, an alarm and its incident were seen
#   --no-build     use the binaries already in target/release
# Logs and data: .cache/quickstart/ (removed at each start).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STATE=$ROOT/.cache/quickstart
CHECK=0
BUILD=1
for arg in "$@"; do
    case $arg in
        --check) CHECK=1 ;;
        --no-build) BUILD=0 ;;
        -h | --help)
            sed -n '2,20p' "$0"
            exit 0
            ;;
        *)
            echo "quickstart: unknown option $arg (see --help)" >&2
            exit 2
            ;;
    esac
done

say() { printf '\nquickstart: %s\n' "$*"; }

bash deploy/setup.sh

if [[ $BUILD -eq 1 ]]; then
    say "building release binaries (a few minutes the first time)"
    cargo build --release --bins
fi
BIN=$ROOT/target/release

for port in 8428 8554 1883 8080 9108; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "quickstart: port $port on 127.0.0.1 is taken; stop what uses it and retry" >&2
        exit 1
    fi
done

rm -rf "$STATE"
mkdir -p "$STATE"
PIDS=()
cleanup() {
    trap - EXIT INT TERM
    say "stopping"
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[i]}" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

start() {
    local name=$1
    shift
    "$@" >"$STATE/$name.log" 2>&1 &
    PIDS+=($!)
    printf 'quickstart: started %-18s pid %-7s log %s\n' "$name" "$!" "$STATE/$name.log"
}

wait_port() {
    local port=$1 name=$2
    for _ in $(seq 1 150); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.2
    done
    echo "quickstart: $name did not start listening on $port; see $STATE/$name.log" >&2
    tail -n 20 "$STATE/$name.log" >&2 || true
    exit 1
}

start victoria-metrics /usr/bin/victoria-metrics -httpListenAddr 127.0.0.1:8428 \
    -storageDataPath "$STATE/vm" -search.latencyOffset=0s
wait_port 8428 victoria-metrics

MEDIA=$ROOT/.cache/media
start rtsp-server /usr/bin/python3 deploy/rtsp-server.py --port 8554 \
    --mount "cam1=$MEDIA/vtest-h264.mp4" \
    --mount "cam2=$MEDIA/vtest-h265.mp4" \
    --mount "cam3=$MEDIA/vtest-360p-h264.mp4"
wait_port 8554 rtsp-server

start parkwatch-ingest "$BIN/parkwatch-ingest" --config deploy/quickstart/ingest.toml
wait_port 1883 parkwatch-ingest
wait_port 8080 parkwatch-ingest

start parkwatch-edge "$BIN/parkwatch-edge" --config deploy/quickstart/edge.toml
wait_port 9108 parkwatch-edge

say "waiting for camera telemetry in VictoriaMetrics, the first alarm and its incident"
seen_points=0
seen_alarm=0
seen_incident=0
for _ in $(seq 1 120); do
    if [[ $seen_points -eq 0 ]]; then
        curl -s -o /dev/null http://127.0.0.1:8428/internal/force_flush || true
        if curl -s 'http://127.0.0.1:8428/api/v1/query' \
            --data-urlencode 'query=camera_stream_frames_decoded{edge="edge-p01"}' |
            grep -q '"camera"'; then
            seen_points=1
            echo "quickstart: telemetry is arriving"
        fi
    fi
    if [[ $seen_alarm -eq 0 ]] &&
        curl -s http://127.0.0.1:9108/metrics | grep -Eq '^parkwatch_edge_alarms_raised_total [1-9]'; then
        seen_alarm=1
        echo "quickstart: the edge raised its first alarm"
    fi
    if [[ $seen_alarm -eq 1 && $seen_incident -eq 0 ]] &&
        curl -s -H 'Authorization: Bearer pw_demo_operator' \
            'http://127.0.0.1:8080/api/v1/incidents?limit=1' | grep -q '"id"'; then
        seen_incident=1
        echo "quickstart: ingest opened the first incident"
    fi
    [[ $seen_points -eq 1 && $seen_alarm -eq 1 && $seen_incident -eq 1 ]] && break
    for pid in "${PIDS[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "quickstart: a process exited early; logs in $STATE" >&2
            tail -n 20 "$STATE"/*.log >&2
            exit 1
        fi
    done
    sleep 1
done
if [[ $seen_points -eq 0 || $seen_alarm -eq 0 || $seen_incident -eq 0 ]]; then
    echo "quickstart: no telemetry, alarm or incident within 2 minutes; logs in $STATE" >&2
    exit 1
fi

cat <<EOF

parkwatch is running. Where to look:

  Alarms and incidents live, one line each (Ctrl-C to leave):
    $BIN/parkctl tail --token pw_demo_operator

  The incidents they opened, and one with its whole timeline:
    $BIN/parkctl incidents list --token pw_demo_operator
    $BIN/parkctl incidents show 1 --token pw_demo_operator
    curl -s -H 'Authorization: Bearer pw_demo_operator' http://127.0.0.1:8080/api/v1/incidents

  The alarms behind them; 'show ID' lists every event stored, by the edge's seq:
    $BIN/parkctl alarms list --token pw_demo_operator

  What the edge decided, with latency: grep 'Alarm\.' $STATE/parkwatch-edge.log

  Camera and box health in VictoriaMetrics (InfluxDB v2 write API):
    curl -s http://127.0.0.1:8428/api/v1/query --data-urlencode 'query=camera_stream_frames_decoded'
    curl -s http://127.0.0.1:8428/api/v1/query --data-urlencode 'query=edge_health_cpu_percent'

  Ingest:  curl -s http://127.0.0.1:8080/healthz ; curl -s http://127.0.0.1:8080/metrics
  Edge:    curl -s http://127.0.0.1:9108/metrics

  Check a site's configuration:
    $BIN/parkctl config check firmware-config/sites/etdz

Logs: $STATE/*.log. Press Ctrl-C to stop everything.
EOF

if [[ $CHECK -eq 1 ]]; then
    exit 0
fi
wait
