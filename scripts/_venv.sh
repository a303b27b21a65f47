# shellcheck shell=bash
# Shared by scripts/run and scripts/test (sourced, not run): the project's virtualenv.
#
# Both scripts must work on a fresh machine with nothing but Python 3.11+ and pip's index, so
# they create .venv themselves. Set PYTHON to use another interpreter than `python3`.

PYTHON="${PYTHON:-python3}"
VENV_DIR=".venv"
LOCK_FILE="requirements.lock"
# The extras that scripts/lock resolves together: every package any spec below can need.
LOCKED_EXTRAS="embedded,postgres,test"

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

# ensure_venv SPEC: create .venv if missing and `pip install -e SPEC` into it, with the
# versions of requirements.lock (pip constraints: each package SPEC needs, at its locked
# version; scripts/run's `.[embedded]` gets fewer packages than scripts/test's `.[test]`).
#
# pip runs quietly; its whole output is kept in .venv/pip-install.log and printed only when it
# fails. The install is skipped when setup.cfg, pyproject.toml and the lock have not changed
# since the last successful one (stamps in .venv): an editable install re-resolves against the
# package index every time, which costs seconds and fails offline. Delete .venv to start over.
ensure_venv() {
    local spec="$1"
    [[ -f "$LOCK_FILE" ]] || die "$LOCK_FILE is missing: run scripts/lock"
    # Also when an old .venv was made by a Python older than 3.11 (or by one since removed).
    if ! "$VENV_DIR/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            2>/dev/null; then
        echo "Creating $VENV_DIR with $("$PYTHON" -V 2>&1)"
        "$PYTHON" -m venv --clear "$VENV_DIR" \
            || die "'$PYTHON -m venv' failed. On Debian/Ubuntu: apt-get install python3-venv"
    fi
    # One stamp per spec, so that scripts/run (.[embedded]) and scripts/test (.[test]) do not
    # undo each other.
    local stamp="$VENV_DIR/.installed-${spec//[^a-z]/_}" wanted
    wanted="$(cat setup.cfg pyproject.toml "$LOCK_FILE" | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
        return 0
    fi
    echo "Installing the gateway ($spec) into $VENV_DIR; this takes 10 to 40 seconds"
    local log="$VENV_DIR/pip-install.log"
    if ! install_with_uv "$spec" >"$log" 2>&1 \
        && ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV_DIR/bin/python" -m pip install --quiet \
            --constraint "$LOCK_FILE" --editable "$spec" >>"$log" 2>&1; then
        cat "$log" >&2
        die "pip install -e '$spec' with the versions of $LOCK_FILE failed (output above, also" \
            "in $log). If setup.cfg changed, refresh the lock: scripts/lock"
    fi
    # A package that SPEC needs but the lock lacks was installed unpinned: stop and say so.
    local unpinned
    unpinned="$(unlocked_requirements "$spec")"
    [[ -z "$unpinned" ]] || die "not pinned in $LOCK_FILE: $unpinned. Run scripts/lock and" \
        "commit the file"
    echo "$wanted" >"$stamp"
}

# uv installs the same locked versions as pip in a third of the time (measured 17 s against
# 41 s for a fresh .venv with .[test]); pip is the fallback when uv cannot be had or fails (an
# index only pip is configured for, say). Pinned here: it builds the environment, it is not
# part of it.
UV_VERSION="0.13.8"

# install_with_uv SPEC: `uv pip install -e SPEC` with the lock's versions, compiled like pip's.
install_with_uv() {
    [[ -z "${GATEWAY_NO_UV:-}" ]] || return 1
    if [[ "$("$VENV_DIR/bin/uv" --version 2>/dev/null)" != "uv $UV_VERSION"* ]]; then
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV_DIR/bin/python" -m pip install --quiet \
            "uv==$UV_VERSION" || return 1
    fi
    "$VENV_DIR/bin/uv" pip install --quiet --python "$VENV_DIR/bin/python" --compile-bytecode \
        --constraint "$LOCK_FILE" --editable "$spec"
}

# unlocked_requirements SPEC: the distributions that the installed gateway with SPEC's extras
# needs, directly or not, and requirements.lock does not name (space-separated; empty when
# all are pinned). Packages a developer added to .venv by hand are not its business.
unlocked_requirements() {
    "$VENV_DIR/bin/python" - "$LOCK_FILE" "$1" <<'PY'
import re
import sys
from importlib.metadata import PackageNotFoundError, distribution

try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


lock_file, spec = sys.argv[1], sys.argv[2]
locked = {norm(re.split(r"[ =<>;@\[]", line, maxsplit=1)[0])
          for line in open(lock_file) if line.strip() and not line.startswith("#")}
extras = re.search(r"\[(.*)\]", spec)
todo = [("banyuwangi-gateway", set(extras.group(1).split(",")) if extras else set())]
seen, missing = set(), set()
while todo:
    name, wanted_extras = todo.pop()
    if (name, frozenset(wanted_extras)) in seen:
        continue
    seen.add((name, frozenset(wanted_extras)))
    if name != "banyuwangi-gateway" and name not in locked:
        missing.add(name)
    try:
        requires = distribution(name).requires or []
    except PackageNotFoundError:
        continue
    for line in requires:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({"extra": e})
                                     for e in (wanted_extras or {""})):
            todo.append((norm(req.name), set(req.extras)))
print(" ".join(sorted(missing)))
PY
}
