#!/bin/sh
# Inside the sandbox after apt installed the stdeb-built python3-abrunnerd .deb.
set -eu
dpkg-query -W -f '${Package} ${Version}\n' python3-abrunnerd
abrunnerctl --help
abrunnerctl --help | grep -q 'usage: abrunnerctl'
echo "STDEB SMOKE PASSED"
