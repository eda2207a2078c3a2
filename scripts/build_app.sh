#!/usr/bin/env bash
# Build the packaged octviewer app from this checkout and prove it works (run by .ci/run).
#
#   0. Linux: the system libraries Qt's xcb plugin needs, BEFORE the build so that PyInstaller
#      bundles them (python -m octviewer.ui.qt_syslibs --install: apt-get as root; else the
#      build fails with the exact install line)
#   1. pyinstaller --noconfirm --clean build.spec  -> build/ and dist/
#   2. the frozen app's own self-test:  dist/octviewer/octviewer --self-test; its --help lists
#      every subcommand (octviewer.cli.SUBCOMMANDS) and --self-test
#   3. bundle size, its 15 largest items, and checks that nothing unused is inside
#   4. cold start to window shown under Xvfb (installs xvfb + xdotool with apt-get when root)
#
# Exit status: 0 all good; 1 the build, the self-test, a content check or the start-up limit
# failed. Nothing is skipped silently: every step that cannot run says so.
#
# Environment:
#   PYTHON                       interpreter with octviewer[all] installed (default: .venv or python3)
#   OCTVIEWER_STARTUP_LIMIT_S    cold-start limit in seconds (default 5)
#   OCTVIEWER_ALLOW_NO_MODEL=1   exit 0 although resources/models/ has no default model (the
#                                self-test then runs with a generated tiny model and says so)
#   OCTVIEWER_SKIP_BUILD=1       reuse an existing dist/ (development only; says so)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
T_START=$(date +%s.%N)
STARTUP_LIMIT_S="${OCTVIEWER_STARTUP_LIMIT_S:-5}"
FAILED=()

say() { printf '\n=== %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
fail() { printf 'FAILED: %s\n' "$*" >&2; FAILED+=("$*"); }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }

if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -n "${VIRTUAL_ENV:-}" ]; then PY="python"
elif [ -x .venv/bin/python ]; then PY=".venv/bin/python"
else PY="python3"; fi
"$PY" -c "import PyInstaller" 2>/dev/null || {
    echo "FAILED: PyInstaller is not installed for $PY: pip install -e '.[package]'" >&2; exit 1; }

case "$(uname -s)" in
    Linux) EXE="dist/octviewer/octviewer"; BUNDLE="dist/octviewer" ;;
    Darwin) EXE="dist/octviewer.app/Contents/MacOS/octviewer"; BUNDLE="dist/octviewer.app" ;;
    *) EXE="dist/octviewer/octviewer.exe"; BUNDLE="dist/octviewer" ;;
esac

say "environment"
"$PY" - <<'EOF'
import platform, torch, PySide6, PyInstaller, octviewer
flavour = f"GPU (CUDA {torch.version.cuda})" if torch.version.cuda else "CPU-only"
print(f"octviewer {octviewer.__version__}; Python {platform.python_version()}; torch {torch.__version__} "
      f"[{flavour} flavour]; PySide6 {PySide6.__version__}; PyInstaller {PyInstaller.__version__}")
EOF

# --- 0. Qt's system libraries, before the build ---------------------------------------------------
if [ "$(uname -s)" = Linux ]; then
    say "0. Qt system libraries (xcb platform plugin)"
    "$PY" -m octviewer.ui.qt_syslibs --install || {
        echo "FAILED: Qt's xcb plugin lacks system libraries (install line above): the bundle" \
            "would carry an incomplete set and open no window" >&2
        exit 1
    }
fi

# --- 1. build ----------------------------------------------------------------------------------
if [ "${OCTVIEWER_SKIP_BUILD:-0}" = "1" ] && [ -x "$EXE" ]; then
    warn "OCTVIEWER_SKIP_BUILD=1: NOT rebuilding, testing the existing $BUNDLE"
    BUILD_S="not built"
else
    say "1. pyinstaller --noconfirm --clean build.spec (log: build/pyinstaller.log)"
    mkdir -p build
    # the default model's int8 network, built with the torch the app ships: a new user's first
    # start loads it instead of building it (docs/SPEED.md; not fatal: the app builds it then)
    "$PY" scripts/build_int8_cache.py resources/models/octviewer-demo-kermany.safetensors \
        >build/int8_cache.log 2>&1 || warn "the int8 network cache was not built (build/int8_cache.log)"
    T0=$(date +%s.%N)
    if ! nice -n 10 "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
            --distpath dist --workpath build build.spec >build/pyinstaller.log 2>&1; then
        tail -n 60 build/pyinstaller.log
        echo "FAILED: the PyInstaller build failed (full log: build/pyinstaller.log)" >&2
        exit 1
    fi
    grep -E '^build.spec:' build/pyinstaller.log || true
    grep -E 'WARNING|ERROR' build/pyinstaller.log | grep -v 'Hidden import .* not found' | tail -n 20 || true
    BUILD_S="$(elapsed "$T0") s"
    echo "build took $BUILD_S"
fi
[ -x "$EXE" ] || { echo "FAILED: no executable at $EXE after the build" >&2; exit 1; }

# --- 2. self-test of the frozen app --------------------------------------------------------------
say "2. $EXE --self-test"
DEFAULT_MODEL="$("$PY" -c 'from octviewer.resources import DEFAULT_MODEL_NAME as n; print(n)')"
SELFTEST_ARGS=(--self-test --json build/selftest.json)
T0=$(date +%s.%N)
if QT_QPA_PLATFORM=offscreen "$EXE" "${SELFTEST_ARGS[@]}"; then
    SELFTEST="passed ($(elapsed "$T0") s)"
elif [ ! -f "resources/models/$DEFAULT_MODEL" ]; then
    fail "no bundled model: resources/models/$DEFAULT_MODEL is missing, the app ships without a model"
    say "2b. self-test again with a generated tiny model (proves the rest of the bundle)"
    mkdir -p build/selftest-model
    "$PY" -c "import sys; sys.path.insert(0, 'tests'); from helpers_models import make_tiny_bundle; \
make_tiny_bundle('build/selftest-model/tiny.safetensors')"
    EXTRA=(--model build/selftest-model/tiny.safetensors)
    if ! ls resources/samples/* >/dev/null 2>&1 && [ -d tests/data/kermany ]; then
        warn "resources/samples/ is empty: the self-test uses tests/data/kermany instead"
        EXTRA+=(--samples tests/data/kermany)
    fi
    T0=$(date +%s.%N)
    if QT_QPA_PLATFORM=offscreen "$EXE" "${SELFTEST_ARGS[@]}" "${EXTRA[@]}"; then
        SELFTEST="passed with a tiny TEST model, not the shipped one ($(elapsed "$T0") s)"
        if [ "${OCTVIEWER_ALLOW_NO_MODEL:-0}" = "1" ]; then
            warn "OCTVIEWER_ALLOW_NO_MODEL=1: the missing default model does not fail this run"
            FAILED=("${FAILED[@]:1}")
        fi
    else
        fail "the frozen self-test failed (details above and in build/selftest.json)"
        SELFTEST="FAILED"
    fi
else
    fail "the frozen self-test failed (details above and in build/selftest.json)"
    SELFTEST="FAILED"
fi

say "2c. $EXE --help lists every subcommand"
QT_QPA_PLATFORM=offscreen "$EXE" --help >build/frozen-help.txt 2>&1 || fail "$EXE --help failed (build/frozen-help.txt)"
for cmd in $("$PY" -c 'from octviewer.cli import SUBCOMMANDS; print(*SUBCOMMANDS)') --self-test; do
    grep -qE "^  $cmd( |$)" build/frozen-help.txt || fail "$EXE --help does not list '$cmd' (build/frozen-help.txt)"
done
sed -n '/^subcommands/,$p' build/frozen-help.txt

# --- 3. size and contents --------------------------------------------------------------------------
say "3. bundle size and contents"
INTERNAL="$BUNDLE"
[ -d "$BUNDLE/_internal" ] && INTERNAL="$BUNDLE/_internal"
[ -d "$BUNDLE/Contents/Frameworks" ] && INTERNAL="$BUNDLE/Contents/Frameworks"
SIZE="$(du -sh "$BUNDLE" | cut -f1)"
echo "bundle: $BUNDLE = $SIZE"
echo "15 largest items:"
{ du -sm "$INTERNAL"/* 2>/dev/null
  [ "$INTERNAL" != "$BUNDLE" ] && find "$BUNDLE" -mindepth 1 -maxdepth 1 ! -path "$INTERNAL" -exec du -sm {} +
} | sort -rn | awk 'NR <= 15 {printf "  %7d MB  %s\n", $1, $2}'
if [ -d "$INTERNAL/torch/lib" ]; then
    echo "torch/lib:"; du -sm "$INTERNAL"/torch/lib/* | sort -rn | awk 'NR <= 6 {printf "  %7d MB  %s\n", $1, $2}'
fi
if [ -d "$INTERNAL/nvidia" ]; then
    echo "nvidia (CUDA libraries of the GPU flavour):"
    du -sm "$INTERNAL"/nvidia/* | sort -rn | awk 'NR <= 8 {printf "  %7d MB  %s\n", $1, $2}'
fi
for bad in triton matplotlib sklearn cv2 pytorch_grad_cam training tests torch/include \
        torch/testing/_internal/opinfo torch/utils/tensorboard PySide6/Qt/qml \
        PySide6/Qt/plugins/platforms/libqvnc.so PySide6/Qt/plugins/platforms/libqeglfs.so \
        PySide6/Qt/lib/libQt6Quick.so.6 PySide6/Qt/lib/libQt6Qml.so.6 PySide6/Qt/lib/libQt6Network.so.6; do
    if [ -e "$INTERNAL/$bad" ]; then fail "the bundle carries $bad, which the app never loads"; fi
done
for need in resources/samples resources/icons resources/fonts/DejaVuSans.ttf \
        pylibjpeg-*.dist-info timm/models/vision_transformer.py; do
    # shellcheck disable=SC2086
    if ! ls -d "$INTERNAL"/$need >/dev/null 2>&1; then fail "the bundle lacks $need"; fi
done
if [ "$(uname -s)" = Linux ]; then
    for f in octviewer.desktop octviewer.png install-desktop-entry.sh; do
        [ -e "$BUNDLE/$f" ] || fail "$BUNDLE/$f is missing (desktop entry / icon)"
    done
fi

# --- 4. cold start under Xvfb ------------------------------------------------------------------------
say "4. cold start to window shown (Xvfb)"
STARTUP="not measured"
if [ "$(uname -s)" != Linux ]; then
    warn "cold start NOT measured: this step uses Xvfb (Linux only)"
else
    if ! command -v Xvfb >/dev/null || ! command -v xdotool >/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "installing xvfb and xdotool (apt-get; Qt's own libraries were checked in step 0)"
            apt-get -o DPkg::Lock::Timeout=180 install -y -q --no-install-recommends xvfb xdotool \
                </dev/null >build/apt.log 2>&1 ||
                { tail -n 20 build/apt.log; warn "apt-get install failed (log: build/apt.log)"; }
        fi
    fi
    if ! command -v Xvfb >/dev/null || ! command -v xdotool >/dev/null; then
        warn "cold start NOT measured: Xvfb or xdotool missing and not installable (not root / no apt-get)"
        STARTUP="NOT measured (no Xvfb/xdotool)"
    else
        XCB="$(find "$INTERNAL" -name libqxcb.so -print -quit)"
        MISSING=""
        [ -n "$XCB" ] && MISSING="$(LD_LIBRARY_PATH="$INTERNAL" ldd "$XCB" | grep "not found" || true)"
        if [ -n "$MISSING" ]; then  # (not 'ldd | grep -q': under pipefail a SIGPIPE hides a hit)
            echo "$MISSING" >&2
            fail "the bundled xcb plugin lacks the system libraries above"
        fi
        DISPLAY_NUM=":$((90 + RANDOM % 9))"
        Xvfb "$DISPLAY_NUM" -screen 0 1600x1000x24 -nolisten tcp >build/xvfb.log 2>&1 &
        XVFB_PID=$!
        trap 'kill "$XVFB_PID" 2>/dev/null || true' EXIT
        sleep 1
        measure_start() {  # prints seconds from exec to the first visible window, or "timeout"
            local t0 pid t
            t0=$(date +%s.%N)
            DISPLAY="$DISPLAY_NUM" QT_QPA_PLATFORM=xcb "$EXE" >>build/startup.log 2>&1 &
            pid=$!
            t="timeout"
            for _ in $(seq 1 1200); do  # up to 60 s
                if DISPLAY="$DISPLAY_NUM" xdotool search --onlyvisible --pid "$pid" >/dev/null 2>&1; then
                    t="$(elapsed "$t0")"
                    for w in $(DISPLAY="$DISPLAY_NUM" xdotool search --onlyvisible --pid "$pid" 2>/dev/null); do
                        DISPLAY="$DISPLAY_NUM" xdotool getwindowname "$w" >>build/startup-window.txt 2>&1 || true
                    done
                    break
                fi
                kill -0 "$pid" 2>/dev/null || { t="exited"; break; }
                sleep 0.05
            done
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            echo "$t"
        }
        : >build/startup.log
        : >build/startup-window.txt
        COLD="$(measure_start)"
        WARM="$(measure_start)"
        echo "cold start to window shown: $COLD s (second start: $WARM s; app log: build/startup.log)"
        echo "window titles seen: $(sort -u build/startup-window.txt | tr '\n' ';')"
        if [[ "$COLD" =~ ^[0-9.]+$ ]]; then
            STARTUP="$COLD s cold, $WARM s warm"
            if python3 -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$COLD" "$STARTUP_LIMIT_S"; then :
            else fail "cold start $COLD s is over the ${STARTUP_LIMIT_S} s limit"; fi
        else
            tail -n 30 build/startup.log >&2
            fail "the frozen app showed no window under Xvfb ($COLD)"
            STARTUP="FAILED ($COLD)"
        fi
        kill "$XVFB_PID" 2>/dev/null || true
        trap - EXIT
    fi
fi

# --- summary -------------------------------------------------------------------------------------------
say "summary"
echo "build:       ${BUILD_S}"
echo "self-test:   ${SELFTEST}"
echo "bundle size: ${SIZE} (${BUNDLE})"
echo "cold start:  ${STARTUP}"
echo "script time: $(elapsed "$T_START") s"
if [ "${#FAILED[@]}" -gt 0 ]; then
    printf 'FAILED: %s\n' "${FAILED[@]}" >&2
    exit 1
fi
echo "packaging: OK"
