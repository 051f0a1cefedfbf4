#!/usr/bin/env bash
# The curl baseline for one bottle, run by `xargs -P 8 -n 5` in run.sh:
#   fetch_one.sh BLOB_URL SHA256 FILE_NAME DEST_DIR TMP_DIR
# Gets the signed storage URL from the registry (307, with the anonymous
# token), downloads it (without the token) to a temp file, checks the
# sha256 and moves it into place.
set -euo pipefail
url=$1 sha=$2 name=$3 dest=$4 tmp=$5
signed=$(curl -sS -o /dev/null -w '%{redirect_url}' -H 'Authorization: Bearer QQ==' "$url")
part="$tmp/$name.part"
curl -sS -f -o "$part" "$signed"
echo "$sha  $part" | sha256sum -c --quiet --strict -
mv "$part" "$dest/$name"
