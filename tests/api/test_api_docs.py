"""The API's docs pages work offline: /docs and /redoc load every file from this server."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from taskward.api.service import DOCS_ASSETS

BASE = "http://taskward.test"
# Where a page loads something from: src= and href= attributes, and the spec URL its script
# hands to Swagger UI (url: '...') or ReDoc (spec-url="...").
_URLS = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|\burl:\s*'([^']+)'""")


def loaded_urls(html: str) -> list[str]:
    return [a or b for a, b in _URLS.findall(html)]


@pytest.mark.parametrize(
    ("page", "kinds"),
    [
        ("/docs", {"javascript", "css"}),
        ("/redoc", {"javascript"}),
    ],
)
async def test_docs_pages_load_only_same_origin_files(
    client: httpx.AsyncClient, page: str, kinds: set[str]
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = loaded_urls(response.text)
    assert urls
    seen: set[str] = set()
    for url in urls:
        absolute = urljoin(BASE + page, url)
        assert urlsplit(absolute).netloc == urlsplit(BASE).netloc, url  # no CDN, no fonts
        loaded = await client.get(absolute)
        assert loaded.status_code == 200, url
        kind = loaded.headers["content-type"].split(";")[0]
        if url.startswith(DOCS_ASSETS):
            seen.update(k for k in ("javascript", "css") if k in kind)
            assert len(loaded.content) > 1000, url  # the real file, not a stub
    assert kinds <= seen
    assert "/openapi.json" in urls
