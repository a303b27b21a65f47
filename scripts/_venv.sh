# shellcheck shell=bash
# Shared by scripts/run and scripts/test (sourced, not run): the project's virtualenv.
#
# Both scripts must work on a fresh machine with nothing but Python 3.11+ and pip's index, so
# they create .venv themselves. Set PYTHON to use another interpreter than `python3`.

PYTHON="${PYTHON:-python3}"
VENV_DIR=".venv"

die() {
    echo "error: $*" >&2
    exit 1
}

# The gateway needs Python 3.11 (setup.cfg: python_requires >= 3.11). Say so before pip does,
# in one line rather than in a resolver error.
require_python_311() {
    command -v "$PYTHON" >/dev/null 2>&1 \
        || die "$PYTHON not found: the gateway needs Python 3.11 or newer."
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        die "the gateway needs Python 3.11 or newer, but $PYTHON is" \
            "$("$PYTHON" -c 'import platform; print(platform.python_version())')." \
            "Install Python 3.11+ or point PYTHON at one: PYTHON=python3.12 $0"
    fi
}

# ensure_venv SPEC: create .venv if missing and `pip install -e SPEC` into it.
#
# pip runs quietly; its whole output is kept in .venv/pip-install.log and printed only when it
# fails. The install is skipped when setup.cfg and pyproject.toml have not changed since the
# last successful one (stamps in .venv): an editable install re-resolves against the package
# index every time, which costs seconds and fails offline. Delete .venv to start over.
ensure_venv() {
    local spec="$1"
    # Also when an old .venv was made by a Python older than 3.11 (or by one since removed).
    if ! "$VENV_DIR/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            2>/dev/null; then
        echo "Creating $VENV_DIR with $("$PYTHON" -V 2>&1)"
        "$PYTHON" -m venv --clear "$VENV_DIR" \
            || die "'$PYTHON -m venv' failed. On Debian/Ubuntu: apt-get install python3-venv"
    fi
    # One stamp per spec, so that scripts/run (.) and scripts/test (.[test]) do not undo each other.
    local stamp="$VENV_DIR/.installed-${spec//[^a-z]/_}" wanted
    wanted="$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
        return 0
    fi
    echo "Installing the gateway ($spec) into $VENV_DIR; this takes about half a minute"
    local log="$VENV_DIR/pip-install.log"
    if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV_DIR/bin/python" -m pip install --quiet \
            --editable "$spec" >"$log" 2>&1; then
        cat "$log" >&2
        die "pip install -e '$spec' failed (output above, also in $log)"
    fi
    echo "$wanted" >"$stamp"
}
