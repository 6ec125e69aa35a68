# Sourced by scripts/run and scripts/test (from the repository's root): the one way .venv is
# made and kept up to date.
#
# ensure_venv EXTRA [ALSO_ENOUGH...] installs taskward (editable) with EXTRA into .venv, but
# only when .venv is missing or pyproject.toml changed since the last install: a stamp file
# in .venv holds the hash of the pyproject.toml each extra was installed from. An install of
# one of ALSO_ENOUGH with the same hash counts too (the dev extra includes the server one).
# A fresh clone (as CI has) has no .venv and installs everything. Delete .venv/.installed-*
# (or .venv) to force an install.

_pyproject_hash() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum pyproject.toml | cut -d' ' -f1
    else
        shasum -a 256 pyproject.toml | cut -d' ' -f1
    fi
}

ensure_venv() {
    local extra="$1"
    shift
    local want
    want="$(_pyproject_hash)"
    if [ -x .venv/bin/python ]; then
        for installed in "$extra" "$@"; do
            if [ "$(cat ".venv/.installed-$installed" 2>/dev/null)" = "$want" ]; then
                return 0
            fi
        done
    else
        python3 -m venv .venv
    fi
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[$extra]"
    # Written last: an install that failed leaves no stamp, so the next start tries again.
    echo "$want" >".venv/.installed-$extra"
}
