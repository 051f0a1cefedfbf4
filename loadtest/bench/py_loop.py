#!/usr/bin/env python3
"""The "sequential Python requests loop" baseline of loadtest/bench/run.sh.

  py_loop.py LIST DEST_DIR TMP_DIR

LIST has "blob_url sha256 file_name" lines (run.sh's list.txt, the same
bottles as the xargs curl baseline). For each bottle, one at a time: ask the
registry for the signed storage URL (307, anonymous token), download it
without the token while hashing with hashlib.sha256 into a temp file in
TMP_DIR, check the digest, and move it into DEST_DIR (os.replace).

Uses `requests` (one Session, so keep-alive connections are reused) when
python3 can import it, else urllib.request from the standard library. Prints
which one on stderr ("http client: ...").
"""

import hashlib
import os
import sys
import urllib.parse

TOKEN = "QQ=="
CHUNK = 64 * 1024

try:
    import requests

    CLIENT = f"requests {requests.__version__}"
except ImportError:  # pragma: no cover - depends on the machine
    requests = None
    import urllib.error
    import urllib.request

    CLIENT = "urllib.request (stdlib)"


def make_fetcher():
    """Returns (signed_url(blob_url), stream(url, file) -> sha256 hex)."""
    if requests is not None:
        session = requests.Session()
        auth = {"Authorization": f"Bearer {TOKEN}"}

        def signed_url(blob_url):
            r = session.get(blob_url, headers=auth, allow_redirects=False)
            r.close()
            if r.status_code not in (301, 302, 303, 307, 308):
                raise RuntimeError(f"{blob_url}: HTTP {r.status_code}, expected a redirect")
            return urllib.parse.urljoin(blob_url, r.headers["Location"])

        def stream(url, out):
            h = hashlib.sha256()
            with session.get(url, stream=True) as r:
                r.raise_for_status()
                for chunk in r.iter_content(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            return h.hexdigest()

        return signed_url, stream

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    no_redirect = urllib.request.build_opener(NoRedirect)

    def signed_url(blob_url):
        req = urllib.request.Request(blob_url, headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            with no_redirect.open(req) as r:
                raise RuntimeError(f"{blob_url}: HTTP {r.status}, expected a redirect")
        except urllib.error.HTTPError as e:
            if e.code not in (301, 302, 303, 307, 308):
                raise
            return urllib.parse.urljoin(blob_url, e.headers["Location"])

    def stream(url, out):
        h = hashlib.sha256()
        with urllib.request.urlopen(url) as r:
            while chunk := r.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
        return h.hexdigest()

    return signed_url, stream


def main():
    list_path, dest, tmp = sys.argv[1:4]
    print(f"http client: {CLIENT}", file=sys.stderr)
    signed_url, stream = make_fetcher()
    done = 0
    with open(list_path) as f:
        for line in f:
            if not line.strip():
                continue
            blob_url, sha, name = line.split()
            part = os.path.join(tmp, name + ".part")
            with open(part, "wb") as out:
                got = stream(signed_url(blob_url), out)
            if got != sha:
                os.unlink(part)
                sys.exit(f"{name}: sha256 {got}, expected {sha}")
            os.replace(part, os.path.join(dest, name))
            done += 1
    print(f"{done} bottles", file=sys.stderr)


if __name__ == "__main__":
    main()
