#!/usr/bin/env bash
# Create or reuse the local environment that `scripts/run` and `scripts/test` (and `make run` /
# `make test`) use; a second call with nothing changed does no install work.
#
#   scripts/setup_env.sh run    the app: torch pair + octviewer[jpeg,vendor,archive]
#   scripts/setup_env.sh test   everything: torch pair + octviewer[all] (tests, ruff, PyInstaller)
#                               + Orthanc and its DICOMweb plugin (the archive the tests start)
#
# Steps, each only when needed:
#   1. .venv with a Python >= 3.10 (on Debian/Ubuntu as root: apt-get install python3-venv
#      when the interpreter lacks venv/ensurepip)
#   2. the torch/torchvision pair: $OCTVIEWER_TORCH (default below), from $TORCH_INDEX_URL if set
#   3. pip install -e ".[EXTRAS]"
#   4. Linux: the system libraries Qt's xcb plugin needs (python -m octviewer.ui.qt_syslibs):
#      installed with apt-get as root, else it stops with the exact `sudo apt-get install` line
#      (for `test` only a warning: the tests run on Qt's offscreen platform)
#   5. test, Linux: Debian's `orthanc orthanc-dicomweb` (the tests start their own Orthanc on
#      loopback; without it those tests skip): apt-get as root, else the line to run
#      (OCTVIEWER_SKIP_ORTHANC=1: do not check)
# Steps 1-3 are skipped when .venv/.octviewer-setup holds the same key: a hash of
# pyproject.toml, the torch spec, the torch index and the Python version (and the extras cover
# the ones asked for).
#
# Environment:
#   OCTVIEWER_TORCH      torch pair (default: "torch==2.14.1 torchvision==0.29.1", the pair the
#                        tests were run with; on Linux PyPI gives its CUDA build, which also runs
#                        on a CPU). CPU-only and 3.4 GB smaller:
#                        TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
#   TORCH_INDEX_URL      pip index for the torch pair (e.g. .../whl/cpu, .../whl/cu130)
#   OCTVIEWER_VENV       environment folder (default: .venv in this checkout)
#   OCTVIEWER_PYTHON     interpreter that creates it (default: python3)
#   OCTVIEWER_SKIP_SYSLIBS=1   do not check the Qt system libraries
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
T0=$(date +%s)
PURPOSE="${1:-run}"
case "$PURPOSE" in
    run) WANT="jpeg vendor archive" ;;
    test) WANT="jpeg vendor archive train test package" ;;
    *) echo "usage: scripts/setup_env.sh run|test" >&2; exit 2 ;;
esac
DEFAULT_TORCH="torch==2.14.1 torchvision==0.29.1"
TORCH_SPEC="${OCTVIEWER_TORCH:-$DEFAULT_TORCH}"
INDEX="${TORCH_INDEX_URL:-}"
VENV="${OCTVIEWER_VENV:-$ROOT/.venv}"
BASE_PY="${OCTVIEWER_PYTHON:-python3}"
STAMP="$VENV/.octviewer-setup"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup FAILED: %s\n' "$*" >&2; exit 1; }
is_root_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=180 install -y -q \
        --no-install-recommends "$@" </dev/null ||
        { DEBIAN_FRONTEND=noninteractive apt-get -q update </dev/null &&
          DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=180 install -y -q \
              --no-install-recommends "$@" </dev/null; }
}

# --- 1. the environment ----------------------------------------------------------------------
command -v "$BASE_PY" >/dev/null || die "no $BASE_PY found: install Python 3.10 or newer (or set OCTVIEWER_PYTHON)"
"$BASE_PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$BASE_PY is Python $("$BASE_PY" -c 'import platform; print(platform.python_version())'); octviewer needs 3.10 or newer (set OCTVIEWER_PYTHON)"
PY="$VENV/bin/python"
if ! "$PY" -c 'import sys' 2>/dev/null; then
    if ! "$BASE_PY" -c 'import ensurepip, venv' 2>/dev/null; then
        VENV_PKG="python3-venv"
        if is_root_apt; then
            say "installing $VENV_PKG (apt-get): $BASE_PY cannot create environments without it"
            apt_install "$VENV_PKG" >/dev/null || die "apt-get install $VENV_PKG failed"
        else
            die "$BASE_PY cannot create a virtual environment. Run: sudo apt-get install $VENV_PKG"
        fi
    fi
    say "creating $VENV"
    rm -rf "$VENV"
    "$BASE_PY" -m venv "$VENV" || die "$BASE_PY -m venv $VENV failed"
fi

# --- 2-3. torch pair and octviewer, unless the stamp says they are in place ----------------------
KEY="$("$PY" - "$TORCH_SPEC" "$INDEX" <<'EOF'
import hashlib, platform, sys
h = hashlib.sha256(open("pyproject.toml", "rb").read())
h.update("\0".join([*sys.argv[1:], platform.python_version()]).encode())
print(h.hexdigest())
EOF
)"
HAVE=""
if [ -f "$STAMP" ] && [ "$(head -n 1 "$STAMP")" = "$KEY" ]; then HAVE="$(sed -n 2p "$STAMP")"; fi
MISSING=""
for e in $WANT; do case " $HAVE " in *" $e "*) ;; *) MISSING="$MISSING $e" ;; esac; done
if [ -z "$MISSING" ]; then
    say "environment up to date ($VENV; torch spec: $TORCH_SPEC${INDEX:+ from $INDEX}; extras: $HAVE)"
else
    EXTRAS="$(printf '%s\n' $HAVE $WANT | sort -u | tr '\n' ' ' | sed 's/ $//')"
    if [ -z "${OCTVIEWER_TORCH:-}${INDEX}" ] && [ "$(uname -s)" = Linux ] &&
            ! command -v nvidia-smi >/dev/null; then
        say "no NVIDIA GPU seen: the default torch wheels are CUDA builds (they run on the CPU too);"
        say "  TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu gives the 3.4 GB smaller CPU build"
    fi
    # shellcheck disable=SC2086
    say "installing $TORCH_SPEC${INDEX:+ from $INDEX} (the first time takes minutes)"
    # shellcheck disable=SC2086
    "$PY" -m pip install -q ${INDEX:+--index-url "$INDEX"} $TORCH_SPEC ||
        die "pip could not install '$TORCH_SPEC'${INDEX:+ from $INDEX}: set OCTVIEWER_TORCH / TORCH_INDEX_URL to a pair for this machine (https://pytorch.org)"
    SPEC=".[$(echo "$EXTRAS" | tr ' ' ',')]"
    say "installing octviewer: pip install -e \"$SPEC\""
    # the torch pair stays as installed: pip keeps an installed version that satisfies the pins
    "$PY" -m pip install -q -e "$SPEC" || die "pip install -e \"$SPEC\" failed (output above)"
    printf '%s\n%s\n' "$KEY" "$EXTRAS" >"$STAMP"
fi

# --- 4. Qt's system libraries (Linux) ------------------------------------------------------------
if [ "$(uname -s)" = Linux ] && [ "${OCTVIEWER_SKIP_SYSLIBS:-0}" != 1 ]; then
    if ! "$PY" -m octviewer.ui.qt_syslibs --install; then
        if [ "$PURPOSE" = run ]; then
            die "Qt's system libraries are missing (the line to run is above)"
        fi
        say "WARNING: Qt's system libraries are missing (see above): the tests run offscreen and" \
            "do not need them, the window and scripts/build_app.sh do"
    fi
fi
# --- 5. the archive the tests start (Linux, test only) -------------------------------------------
ORTHANC_PKGS="orthanc orthanc-dicomweb"
if [ "$PURPOSE" = test ] && [ "$(uname -s)" = Linux ] && [ "${OCTVIEWER_SKIP_ORTHANC:-0}" != 1 ]; then
    if [ -x /usr/sbin/Orthanc ] && ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so* >/dev/null 2>&1; then
        :
    elif is_root_apt; then
        say "installing $ORTHANC_PKGS (apt-get) for the archive tests"
        # the package's own service start is refused in containers: harmless, the tests start
        # a private Orthanc of their own
        apt_install $ORTHANC_PKGS >/dev/null || say "WARNING: apt-get install $ORTHANC_PKGS failed: the archive tests will skip"
    else
        say "WARNING: Orthanc is missing, the archive tests will skip. Run:" \
            "sudo apt-get install -y --no-install-recommends $ORTHANC_PKGS"
    fi
fi
say "ready in $(($(date +%s) - T0)) s"
