"""Fetch every page, /graphql (GraphiQL), /healthz and every asset the pages link to.

Used by .ci/run against the README's demo and against the installed wheel. Standard
library only (the wheel's venv has no test extra). Fails (exit 1) on any answer that is
not 200 and on any page that links an asset outside the server (no CDN, works offline).

    python .ci/check_pages.py http://127.0.0.1:8000 [--wait 120]
"""

from __future__ import annotations

import re
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urljoin, urlsplit

PAGES = ["/", "/sankey", "/activity", "/activity?q=XM-DAC-7", "/donor", "/fund", "/league",
         "/naps", "/upload", "/imports", "/graphql", "/healthz", "/livez",
         "/export.csv", "/export.json", "/export.xml"]
#: Pages whose first link of this shape is followed too: the card of an organisation the
#: database really holds (the demo and the wheel's one-file database hold different ones).
FOLLOW = {"/donor": re.compile(r'href="(/donor\?ref=[^"&]+)"'),
          "/fund": re.compile(r'href="(/fund\?ref=[^"&]+)"')}
#: Pages that must answer 404: an organisation nothing names gets "no such organisation".
MISSING = ["/donor?ref=NO-SUCH-ORG-0"]
ASSET = re.compile(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", re.I)


def get(url: str, accept: str = "text/html") -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait(base: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if get(base + "/livez")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    sys.exit(f"FAIL: {base} did not answer in {seconds:.0f} s")


def main(argv: list[str]) -> int:
    base = argv[0].rstrip("/")
    if "--wait" in argv:
        wait(base, float(argv[argv.index("--wait") + 1]))
    host = urlsplit(base).netloc
    bad: list[str] = []
    assets: set[str] = set()
    pages = list(PAGES)
    for path in pages:
        status, body = get(base + path)
        print(f"{status} {path} ({len(body)} bytes)")
        if status != 200:
            bad.append(f"{status} {path}: {body[:300]!r}")
            continue
        if path in FOLLOW and (hit := FOLLOW[path].search(body.decode("utf-8", "replace"))):
            pages.append(hit.group(1).replace("&amp;", "&"))
        for link in ASSET.findall(body.decode("utf-8", "replace")):
            url = urljoin(base + path, link.replace("&amp;", "&"))
            if urlsplit(url).scheme not in ("http", "https"):
                continue  # data: URIs
            if urlsplit(url).netloc != host:
                bad.append(f"external asset on {path}: {url}")
            elif not urlsplit(url).path.startswith(("/export.", "/activity", "/donor", "/fund")):
                assets.add(url)
    for path in MISSING:
        status, body = get(base + path)
        print(f"{status} {path} (must be 404)")
        if status != 404 or b"No such organisation" not in body:
            bad.append(f"{status} {path}: an unknown organisation must answer 404 and say so")
    for url in sorted(assets):
        status, body = get(url, accept="*/*")
        print(f"{status} {url.removeprefix(base)} ({len(body)} bytes)")
        if status != 200:
            bad.append(f"{status} {url}")
    if not any("/static/graphiql/" in a for a in assets):
        bad.append("/graphql links no /static/graphiql/ asset (GraphiQL not served locally)")
    for line in bad:
        print("FAIL:", line)
    print(f"{len(pages) + len(MISSING)} pages, {len(assets)} assets, {len(bad)} failures")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
