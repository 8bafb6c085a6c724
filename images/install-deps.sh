#!/bin/sh
# install-deps LOCKFILE: one image's pinned, hashed dependencies (images/requirements/<extra>.txt,
# written by `make lock`) into /opt/venv, by a uv that is removed again. Runs in images/Dockerfile
# with a cache mount at /var/cache/mlkube (downloads survive between builds).
set -eu
UV_VERSION=0.13.9
CACHE=/var/cache/mlkube
# Trust the system CA bundle (a TLS-inspecting proxy's CA, in a local base) in pip and uv alike.
[ -f /etc/ssl/certs/ca-certificates.crt ] && export PIP_CERT=/etc/ssl/certs/ca-certificates.crt
python -m venv --without-pip /opt/venv
python -m venv /tmp/uv
/tmp/uv/bin/pip install --quiet --disable-pip-version-check --cache-dir "$CACHE/pip" "uv==$UV_VERSION"
# UV_COMPILE_BYTECODE: the root filesystem is read-only at run time, so Python could never cache
# the bytecode it compiles; compiling here saves seconds on every pod start.
UV_SYSTEM_CERTS=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_CACHE_DIR="$CACHE/uv" \
    /tmp/uv/bin/uv pip install --quiet --python /opt/venv/bin/python --require-hashes -r "$1"
rm -rf /tmp/uv
# Packages' own test suites are never imported at run time (numpy, pandas, scipy, scikit-learn
# and pyarrow ship about 100 MB of them).
before=$(du -sm /opt/venv | cut -f1)
find /opt/venv/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} +
after=$(du -sm /opt/venv | cut -f1)
echo "install-deps $1: $after MB ($((before - after)) MB of test suites dropped)"
