"""Fetch a web page or feed for ingestion, carefully: the URL comes from a user.

- Only http(s). Every address the host name resolves to is checked, and private, loopback,
  link-local, multicast and reserved ones are refused (no reaching the metadata service or the
  intranet through the bot) unless `allow_private` (BOT_ALLOW_PRIVATE_URLS=1).
- Redirects are followed by hand, at most `MAX_REDIRECTS`, each target checked again.
- Connect/read timeouts; the body is streamed and cut off past `MAX_BYTES`.
- Only HTML, plain text and feed (XML) content types; anything else is refused by name.
- Text is decoded by the declared charset, else the HTML <meta> charset, else UTF-8, else a
  detected charset; bytes that fit none are refused.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from bot.errors import IngestError

MAX_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
TIMEOUT_SECONDS = 10.0
USER_AGENT = "stargate-qa-bot/0.1 (+ingest)"
HTML_TYPES = {"text/html", "application/xhtml+xml"}
TEXT_TYPES = {"text/plain", "text/markdown"}
FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/xml", "text/xml", "application/rdf+xml"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class Page:
    """A fetched document: where it ended up, its media type, its decoded text."""

    url: str
    content_type: str
    text: str


def check_address(url: str, allow_private: bool) -> None:
    """Refuse non-http(s) URLs and hosts that resolve to a non-public address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise IngestError(f"{url}: only http and https URLs can be fetched")
    if not parts.hostname:
        raise IngestError(f"{url}: the URL has no host")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError) as exc:
        raise IngestError(f"{url}: cannot resolve {parts.hostname} ({exc})") from None
    for info in infos:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
        # is_global also excludes shared (100.64/10, cloud metadata), documentation and other
        # special-purpose ranges that are neither "private" nor "reserved".
        if not address.is_global or address.is_multicast:
            raise IngestError(
                f"{url}: {parts.hostname} resolves to the non-public address {address}; "
                "set BOT_ALLOW_PRIVATE_URLS=1 to fetch from private networks"
            )


def decode_body(raw: bytes, charset: str | None, url: str) -> str:
    """Text from bytes: declared charset, <meta> charset, UTF-8, then detection; else refuse."""
    candidates = [charset] if charset else []
    meta = _META_CHARSET.search(raw[:4096])
    if meta:
        candidates.append(meta.group(1).decode("ascii", "ignore"))
    candidates.append("utf-8")
    for name in candidates:
        try:
            return raw.decode(name or "utf-8")
        except (LookupError, UnicodeDecodeError):
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None or best.encoding is None:
        raise IngestError(f"{url}: the text is not UTF-8 and its encoding cannot be recognised")
    return str(best)


def fetch(
    url: str,
    *,
    allow_private: bool = False,
    accept: frozenset[str] | set[str] = HTML_TYPES | TEXT_TYPES,
    max_bytes: int = MAX_BYTES,
    timeout: float = TIMEOUT_SECONDS,
) -> Page:
    """GET `url` within the limits above; IngestError says why not."""
    import httpx

    current = url
    with httpx.Client(
        follow_redirects=False, timeout=httpx.Timeout(timeout), headers={"User-Agent": USER_AGENT}
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            check_address(current, allow_private)
            try:
                with client.stream("GET", current) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise IngestError(f"{current}: redirect without a Location header")
                        current = urljoin(current, location)
                        continue
                    if response.status_code >= 400:
                        raise IngestError(f"{current}: the server answered HTTP {response.status_code}")
                    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    if media_type not in accept:
                        wanted = ", ".join(sorted(accept))
                        raise IngestError(f"{current}: content type {media_type or 'none'!r} is not one of {wanted}")
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise IngestError(f"{current}: {int(declared)} bytes is over the {max_bytes}-byte limit")
                    chunks: list[bytes] = []
                    size = 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise IngestError(f"{current}: the body is over the {max_bytes}-byte limit")
                        chunks.append(chunk)
                    text = decode_body(b"".join(chunks), response.charset_encoding, current)
                    return Page(url=str(response.url), content_type=media_type, text=text)
            except httpx.TimeoutException:
                raise IngestError(f"{current}: timed out after {timeout:g} s") from None
            except httpx.HTTPError as exc:
                raise IngestError(f"{current}: {type(exc).__name__}: {exc}") from None
    raise IngestError(f"{url}: more than {MAX_REDIRECTS} redirects")
