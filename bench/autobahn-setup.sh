#!/bin/sh
# Autobahn|Testsuite for `python -m bench.autobahn` (docs/performance.md, "Conformance suite").
#
# The suite (PyPI's autobahntestsuite) is Python 2 code, and Debian 12 has no Python 2.
# Debian 11's python2.7 packages run on Debian 12 once unpacked beside the two libraries
# Debian 12 dropped (libssl1.1, libffi7): this unpacks them under $FASTIM_PY27 (nothing is
# installed into the system; dpkg does not know of them), installs pip 20.3.4 (the last
# for Python 2) and the suite into that tree, and writes two wrappers:
#   $FASTIM_PY27/python2   Python 2.7 with its libraries and packages found
#   $FASTIM_PY27/usr/bin/wstest   replaced by a wrapper that runs the suite through it
# Needs: curl, dpkg-deb, gcc (wsaccel and Twisted build C extensions), a Python 3 with
# pip (to fetch pip's wheel), and the Debian and PyPI registries.
set -eu
PREFIX=${FASTIM_PY27:-/opt/fastim-py27}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PY3=${PYTHON3:-python3}
PY27=2.7.18-8+deb11u1

mkdir -p "$PREFIX/debs" "$PREFIX/wheels"
cd "$PREFIX/debs"
for deb in \
    p/python2.7/python2.7_${PY27}_amd64.deb \
    p/python2.7/python2.7-minimal_${PY27}_amd64.deb \
    p/python2.7/libpython2.7-minimal_${PY27}_amd64.deb \
    p/python2.7/libpython2.7-stdlib_${PY27}_amd64.deb \
    p/python2.7/libpython2.7_${PY27}_amd64.deb \
    p/python2.7/libpython2.7-dev_${PY27}_amd64.deb \
    p/python2.7/python2.7-dev_${PY27}_amd64.deb \
    o/openssl/libssl1.1_1.1.1w-0+deb11u1_amd64.deb \
    libf/libffi/libffi7_3.3-6_amd64.deb; do
    test -s "$(basename "$deb")" || curl -fsS -O "$MIRROR/pool/main/$deb"
    dpkg-deb -x "$(basename "$deb")" "$PREFIX"
done

R=$PREFIX/usr
SITE=$R/lib/python2.7/site-packages
cat > "$PREFIX/python2" <<EOF
#!/bin/sh
LD_LIBRARY_PATH=$R/lib/x86_64-linux-gnu PYTHONHOME=$R exec $R/bin/python2.7 "\$@"
EOF
chmod +x "$PREFIX/python2"
# Debian's site.py reads .pth files in dist-packages; pip installs into site-packages, whose
# .pth files (zope's namespace package) must be read too.
echo "import site; site.addsitedir('$SITE')" > "$R/lib/python2.7/dist-packages/fastim-site.pth"

"$PY3" -m pip download -q --no-deps -d "$PREFIX/wheels" pip==20.3.4
export PIP_NO_PYTHON_VERSION_WARNING=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export CFLAGS="-I$R/include/python2.7 -I$R/include" LDFLAGS="-L$R/lib/x86_64-linux-gnu"
"$PREFIX/python2" "$PREFIX/wheels/pip-20.3.4-py2.py3-none-any.whl/pip" install -q \
    --prefix "$R" "$PREFIX/wheels/pip-20.3.4-py2.py3-none-any.whl"
# setuptools 44 (the last for Python 2) and wheel first, then the suite without build
# isolation: an isolated build of its sdists looked for a setuptools for Python 2 on the
# registry and found none (2026-12-07).
"$PREFIX/python2" -m pip install -q --prefix "$R" "setuptools<45" "wheel<0.38"
"$PREFIX/python2" -m pip install -q --no-build-isolation --prefix "$R" autobahntestsuite==25.10.1

# pip's wstest starts python2.7 directly, without the library path: wrap it.
test -e "$R/bin/wstest.py" || mv "$R/bin/wstest" "$R/bin/wstest.py"
cat > "$R/bin/wstest" <<EOF
#!/bin/sh
exec $PREFIX/python2 $R/bin/wstest.py "\$@"
EOF
chmod +x "$R/bin/wstest"
"$R/bin/wstest" --autobahnversion
