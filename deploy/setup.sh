#!/usr/bin/env bash
# deploy/setup.sh: prepare this machine to build, test and demo parkwatch.
#
# Idempotent and quick when everything is there: each step checks first and
# installs or rebuilds only what is missing or stale. Run as root (it uses
# apt-get and writes /opt/parkwatch) on Debian 12 (bookworm). Reaches only the
# package registries (Debian, PyPI).
#
# Steps:
#   1. Debian packages: FFmpeg dev libraries and clang (ffmpeg-next), the
#      GStreamer RTSP server (deploy/rtsp-server.py), VictoriaMetrics,
#      Mosquitto, PostgreSQL, wrk, curl, jq, sqlite3.
#   2. ONNX Runtime's shared library, numpy and pymodbus from PyPI into
#      /opt/parkwatch/python, and the symlink /opt/parkwatch/lib/libonnxruntime.so
#      that the binaries load by default (no ORT_DYLIB_PATH needed).
#   3. Detector weights: models/*.onnx copied from ../shared/models/ and
#      checked against the sha256 in models/*.toml.
#   4. Test video: .cache/media/ from ../shared/media/vtest.avi (or Debian's
#      opencv-doc), transcoded once to H.264/H.265 camera-like streams.
#
# Environment overrides: PARKWATCH_SHARED (default: ../shared beside the
# repository), PARKWATCH_PYTHON (an interpreter with pip; default: python3 on
# PATH when it has pip).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${PARKWATCH_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
PREFIX=/opt/parkwatch
PYTARGET=$PREFIX/python
ORT_VERSION=1.31.1
NUMPY_VERSION=2.4.6
PYMODBUS_VERSION=3.16.1
ORT_LIB=$PYTARGET/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION
MEDIA=$ROOT/.cache/media
# sha256 of OpenCV's vtest.avi (the same in ../shared/media and opencv-doc 4.6.0).
VTEST_SHA256=45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf

APT_PACKAGES=(
    # FFmpeg bindings (ffmpeg-next) and their bindgen
    libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libavdevice-dev
    libswscale-dev pkg-config clang libclang-dev ffmpeg
    # RTSP test server
    gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
    gstreamer1.0-tools
    # servers and tools used by the tests and the demo
    victoria-metrics mosquitto mosquitto-clients postgresql wrk curl jq sqlite3
)

summary=()
warnings=()
say() { printf 'setup: %s\n' "$*"; }
note() { summary+=("$*"); }
warn() {
    warnings+=("$*")
    printf 'setup: WARNING: %s\n' "$*" >&2
}
die() {
    printf 'setup: ERROR: %s\n' "$*" >&2
    exit 1
}
need_root() {
    [[ $EUID -eq 0 ]] || die "$1 needs root: run 'sudo bash deploy/setup.sh'"
}

# --- 1. Debian packages -----------------------------------------------------
apt_updated=0
apt_install() {
    need_root "installing Debian packages ($*)"
    export DEBIAN_FRONTEND=noninteractive
    if [[ $apt_updated -eq 0 ]]; then
        say "apt-get update"
        apt-get -q -o Acquire::Retries=3 update >/dev/null
        apt_updated=1
    fi
    say "apt-get install $*"
    apt-get -q -y -o Acquire::Retries=3 -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold install "$@" >/dev/null
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    [[ $status == ii* ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    apt_install "${missing[@]}"
    note "Debian packages installed: ${missing[*]}"
else
    note "Debian packages: all ${#APT_PACKAGES[@]} present"
fi

# --- 2. ONNX Runtime, numpy, pymodbus from PyPI -------------------------------
find_python() {
    local candidates=()
    [[ -n ${PARKWATCH_PYTHON:-} ]] && candidates+=("$PARKWATCH_PYTHON")
    candidates+=(python3 python3.11 /usr/local/bin/python3 /usr/bin/python3)
    local py
    for py in "${candidates[@]}"; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -m pip --version >/dev/null 2>&1; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

have_dist() { compgen -G "$PYTARGET/$1-$2.dist-info" >/dev/null; }

if [[ -f $ORT_LIB ]] && have_dist onnxruntime "$ORT_VERSION" &&
    have_dist numpy "$NUMPY_VERSION" && have_dist pymodbus "$PYMODBUS_VERSION"; then
    note "PyPI packages present in $PYTARGET (onnxruntime $ORT_VERSION, numpy $NUMPY_VERSION, pymodbus $PYMODBUS_VERSION)"
else
    need_root "installing into $PYTARGET"
    PY=$(find_python) || die "no python3 with pip found (set PARKWATCH_PYTHON)"
    say "pip install into $PYTARGET with $PY"
    mkdir -p "$PYTARGET"
    "$PY" -m pip install --quiet --disable-pip-version-check --no-input --upgrade \
        --root-user-action=ignore \
        --target "$PYTARGET" \
        "onnxruntime==$ORT_VERSION" "numpy==$NUMPY_VERSION" "pymodbus==$PYMODBUS_VERSION"
    [[ -f $ORT_LIB ]] || die "pip installed onnxruntime but $ORT_LIB is missing"
    note "PyPI packages installed into $PYTARGET (onnxruntime $ORT_VERSION, numpy $NUMPY_VERSION, pymodbus $PYMODBUS_VERSION)"
fi

if [[ $(readlink "$PREFIX/lib/libonnxruntime.so" 2>/dev/null || true) != "$ORT_LIB" ]]; then
    need_root "linking $PREFIX/lib/libonnxruntime.so"
    mkdir -p "$PREFIX/lib"
    ln -sfn "$ORT_LIB" "$PREFIX/lib/libonnxruntime.so"
    note "linked $PREFIX/lib/libonnxruntime.so -> $ORT_LIB"
else
    note "ONNX Runtime: $PREFIX/lib/libonnxruntime.so -> $ORT_LIB"
fi

# --- 2b. API test tools from PyPI: schemathesis, openapi-spec-validator ------
# In their own virtual environment under .cache (the incident API's OpenAPI
# test runs them against a live server).
ST_VENV=$ROOT/.cache/schemathesis-venv
SCHEMATHESIS_VERSION=4.32.5
OPENAPI_VALIDATOR_VERSION=0.9.0
if [[ -x $ST_VENV/bin/st ]] && [[ -x $ST_VENV/bin/openapi-spec-validator ]] &&
    compgen -G "$ST_VENV/lib/python*/site-packages/schemathesis-$SCHEMATHESIS_VERSION.dist-info" >/dev/null; then
    note "schemathesis $SCHEMATHESIS_VERSION present in $ST_VENV"
else
    PY=$(find_python) || die "no python3 with pip found (set PARKWATCH_PYTHON)"
    say "installing schemathesis into $ST_VENV"
    rm -rf "$ST_VENV"
    "$PY" -m venv "$ST_VENV"
    "$ST_VENV/bin/pip" install --quiet --disable-pip-version-check --no-input \
        "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$OPENAPI_VALIDATOR_VERSION"
    note "schemathesis $SCHEMATHESIS_VERSION installed into $ST_VENV"
fi

# --- 3. Detector weights --------------------------------------------------------
manifest_value() { # manifest_value FILE KEY: a top-level string value
    sed -n "s/^$2[[:space:]]*=[[:space:]]*\"\\([^\"]*\\)\".*/\\1/p" "$1" | head -n 1
}
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

models_ok=1
for manifest in "$ROOT"/models/*.toml; do
    [[ -e $manifest ]] || continue
    file=$(manifest_value "$manifest" file)
    want=$(manifest_value "$manifest" sha256)
    [[ -n $file && -n $want ]] || die "$manifest: no file or sha256 key"
    dest=$ROOT/models/$file
    if [[ -f $dest && $(sha_of "$dest") == "$want" ]]; then
        note "model $file: present, sha256 ok"
        continue
    fi
    src=$SHARED/models/$file
    if [[ -f $src ]]; then
        got=$(sha_of "$src")
        if [[ $got != "$want" ]]; then
            die "$src: sha256 $got, but $(basename "$manifest") expects $want"
        fi
        cp "$src" "$dest.tmp"
        chmod 644 "$dest.tmp"
        mv -f "$dest.tmp" "$dest"
        note "model $file: copied from $SHARED/models, sha256 ok"
    else
        models_ok=0
        [[ -f $dest ]] && warn "models/$file has the wrong sha256 (expected $want)"
        warn "model weights models/$file missing: $SHARED/models/ is absent. Download
    the NanoDet-m ONNX export (NanoDet-m by RangiLyu, Apache-2.0) from the public
    repository hpc203/nanodet-opncv-dnn-cpp-python (files nanodet.onnx and
    nanodet_m.onnx; keep the one whose input matches $(basename "$manifest")),
    save it as models/$file and check that its sha256 is $want.
    Tests and the demo that run the detector fail until then."
    fi
done
labels=$ROOT/models/coco-80.names
[[ -f $labels ]] || die "$labels is missing (it is part of the repository)"

# --- 4. Test video ----------------------------------------------------------------
mkdir -p "$MEDIA"
vtest=$SHARED/media/vtest.avi
if [[ ! -f $vtest ]]; then
    vtest=$MEDIA/vtest.avi
    if [[ ! -f $vtest ]]; then
        say "$SHARED/media/vtest.avi absent: taking vtest.avi from Debian's opencv-doc"
        tmp=$(mktemp -d)
        (
            cd "$tmp"
            if ! apt-get -q -o Acquire::Retries=3 download opencv-doc >/dev/null 2>&1; then
                need_root "apt-get update (to download opencv-doc)"
                apt-get -q -o Acquire::Retries=3 update >/dev/null
                apt-get -q -o Acquire::Retries=3 download opencv-doc >/dev/null
            fi
            dpkg-deb --fsys-tarfile opencv-doc_*.deb |
                tar x ./usr/share/doc/opencv-doc/examples/data/vtest.avi
        ) || {
            rm -rf "$tmp"
            die "could not get vtest.avi from Debian's opencv-doc"
        }
        mv "$tmp/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$vtest"
        rm -rf "$tmp"
        note "vtest.avi extracted from opencv-doc into $vtest"
    fi
fi
if [[ $(sha_of "$vtest") != "$VTEST_SHA256" ]]; then
    warn "$vtest: sha256 differs from the known OpenCV sample ($VTEST_SHA256)"
fi

# Camera-like streams: constant 10 fps, no B-frames, a keyframe every 10
# frames (1 s), yuv420p. x265 gets a closed GOP (IDR keyframes) and repeats
# its parameter sets, so a client can start at any keyframe.
X264=(-c:v libx264 -preset veryfast -profile:v high -bf 0 -g 10 -keyint_min 10
    -sc_threshold 0 -x264-params repeat-headers=1)
X265=(-c:v libx265 -preset veryfast
    -x265-params "keyint=10:min-keyint=10:scenecut=0:bframes=0:open-gop=0:repeat-headers=1:log-level=error")
COMMON=(-an -r 10 -pix_fmt yuv420p)

fresh() { [[ -s $1 && $1 -nt $2 ]]; }
transcode() { # transcode OUT INPUT FFMPEG-ARGS...
    local out=$1 in=$2
    shift 2
    if fresh "$out" "$in"; then
        note "media $(basename "$out"): up to date"
        return 0
    fi
    say "encoding $(basename "$out")"
    local tmp=$out.part.${out##*.}
    ffmpeg -nostdin -hide_banner -loglevel error -y -i "$in" "$@" "$tmp"
    mv "$tmp" "$out"
    note "media $(basename "$out"): encoded"
}

transcode "$MEDIA/vtest-h264.mp4" "$vtest" "${COMMON[@]}" "${X264[@]}" -movflags +faststart
transcode "$MEDIA/vtest-h265.mp4" "$vtest" "${COMMON[@]}" "${X265[@]}" -movflags +faststart
transcode "$MEDIA/vtest-360p-h264.mp4" "$vtest" "${COMMON[@]}" -vf "scale=640:360,setsar=1" \
    "${X264[@]}" -movflags +faststart
# Annex B elementary streams (what deploy/rtsp-server.py loops), by stream copy.
transcode "$MEDIA/vtest-h264.h264" "$MEDIA/vtest-h264.mp4" -map 0:v:0 -c:v copy \
    -bsf:v h264_mp4toannexb -f h264
transcode "$MEDIA/vtest-h265.h265" "$MEDIA/vtest-h265.mp4" -map 0:v:0 -c:v copy \
    -bsf:v hevc_mp4toannexb -f hevc

# --- Summary -------------------------------------------------------------------------
echo
echo "parkwatch setup summary"
for line in "${summary[@]}"; do echo "  - $line"; done
echo "  paths:"
echo "      ONNX Runtime  $PREFIX/lib/libonnxruntime.so"
echo "      python libs   $PYTARGET (PYTHONPATH for pymodbus/onnxruntime scripts)"
echo "      models        $ROOT/models"
echo "      media         $MEDIA"
echo "      RTSP server   /usr/bin/python3 $ROOT/deploy/rtsp-server.py --mount cam1=$MEDIA/vtest-h264.mp4"
if ((${#warnings[@]})); then
    echo "  warnings:"
    for w in "${warnings[@]}"; do echo "  ! $w"; done
fi
if [[ $models_ok -eq 0 ]]; then
    echo "setup: done, but detector weights are missing (see above)"
else
    echo "setup: done"
fi
