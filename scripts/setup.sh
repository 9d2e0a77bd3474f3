#!/usr/bin/env bash
# Prepare this machine to run the test suite (idempotent, quiet unless it fails).
#
#   * apt: postgresql (the tests start a throwaway cluster with its binaries),
#     xmlsec1, and nodejs+npm only when `node` is missing (node-soap interop
#     test).  `apt-get update` runs only if something must be installed.  Not
#     root and no passwordless sudo: prints what to install and goes on.
#   * pip: the package in editable mode with its test extras, plus tox.
#
# Usage: bash scripts/setup.sh        (PYTHON=... to choose the interpreter)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python}
LOG=$(mktemp -t declarations-setup.XXXXXX.log)
trap 'rm -f "$LOG"' EXIT
done_items=()

fail() {
    echo "scripts/setup.sh: $1 failed; output follows:" >&2
    cat "$LOG" >&2
    exit 1
}

# ---------------------------------------------------------------- apt packages
missing=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v xmlsec1 >/dev/null || missing+=(xmlsec1)
command -v node >/dev/null || missing+=(nodejs npm)

if ((${#missing[@]})); then
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            SUDO=(sudo -n)
        else
            echo "scripts/setup.sh: not root; please install: apt-get install ${missing[*]}" >&2
            done_items+=("apt: SKIPPED, not root (need ${missing[*]})")
            missing=()
        fi
    fi
    if ((${#missing[@]})); then
        export DEBIAN_FRONTEND=noninteractive
        "${SUDO[@]}" apt-get update -qq >"$LOG" 2>&1 || fail "apt-get update"
        "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" \
            >>"$LOG" 2>&1 || fail "apt-get install ${missing[*]}"
        done_items+=("apt: ${missing[*]}")
    fi
fi

# ------------------------------------------------------------- python packages
"$PYTHON" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    -e '.[test]' tox >"$LOG" 2>&1 || fail "pip install -e '.[test]' tox"
# pyenv only sees new console scripts (tox, pytest) after a rehash
if command -v pyenv >/dev/null; then pyenv rehash >/dev/null 2>&1 || true; fi
done_items+=("pip: -e .[test] + tox ($("$PYTHON" -c 'import sys; print(sys.version.split()[0])'))")

((${#done_items[@]} == 2)) || done_items=("apt: nothing to install" "${done_items[@]}")
echo "setup: ${done_items[0]}; ${done_items[1]}"
