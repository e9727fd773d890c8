"""Fetch a web page or feed for ingestion, carefully: the URL comes from a user.

- Only http(s); a URL that does not parse (a port past 65535, an unclosed `[`) is refused by name.
- The connection goes to an address that was checked: the host name is resolved once, at
  connect time, inside the transport (`_GuardedBackend`), every address it resolves to is
  checked, and the socket is opened to one of those very addresses (TLS still names the host,
  so SNI and certificates work). A name that answers a public address to a check and a private
  one to a second lookup (DNS rebinding) gets no second lookup. Private, loopback, link-local,
  multicast and reserved addresses are refused unless `allow_private` (BOT_ALLOW_PRIVATE_URLS=1).
- Redirects are followed by hand, at most `MAX_REDIRECTS`, each target checked again.
- `timeout` is a deadline for the whole fetch (redirects and body included), enforced at every
  socket read and write: a server dripping a byte a second cannot hold a fetch past it.
- The body is streamed and cut off past `MAX_BYTES`, counted after decoding: only gzip is asked
  for and accepted (once: "gzip, gzip" or any other encoding is refused by name), and inflated
  within the limit, so a small compressed bomb cannot take memory before the cap applies.
- Only HTML, plain text and feed (XML) content types; anything else is refused by name.
- Text is decoded by the declared charset, else the HTML <meta> charset, else UTF-8, else a
  detected charset; bytes that fit none (or a charset Python cannot use) are refused.
- Proxies from the environment are not used: the address check is only meaningful when this
  process opens the connection itself.
- Conditional GET: given the `Validators` of an earlier fetch, it sends If-None-Match and
  If-Modified-Since; a 304 comes back as a `Page` that is `not_modified`, its body never read. An
  error status is a `FetchStatusError` carrying the status and the server's Retry-After.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urljoin, urlsplit

from bot.errors import FetchStatusError, IngestError

if TYPE_CHECKING:
    import ssl

    import httpcore
    import httpx

MAX_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
TIMEOUT_SECONDS = 10.0
USER_AGENT = "stargate-qa-bot/0.1 (+ingest)"
HTML_TYPES = {"text/html", "application/xhtml+xml"}
TEXT_TYPES = {"text/plain", "text/markdown"}
GZIP = ("gzip", "x-gzip")
INFLATE_BLOCK = 256 * 1024  # bytes inflated per step: a whole-limit step peaked at 3x the limit
FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/xml", "text/xml", "application/rdf+xml"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class Validators:
    """What a server said identifies its document's version (ETag, Last-Modified), sent back as
    If-None-Match and If-Modified-Since."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        sent = {"If-None-Match": self.etag, "If-Modified-Since": self.last_modified}
        return {name: value for name, value in sent.items() if value}


@dataclass(frozen=True)
class Page:
    """A fetched document: where it ended up, its media type, its decoded text, its validators;
    `not_modified` when the server answered 304 to the validators sent (no text then)."""

    url: str
    content_type: str
    text: str
    validators: Validators = Validators()
    not_modified: bool = False


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None without one."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def parse_url(url: str) -> tuple[SplitResult, str, int]:
    """The parts, host and port of an http(s) URL; IngestError for anything else or unparsable."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range or not a number
        host = parts.hostname
    except ValueError as exc:
        raise IngestError(f"{url}: not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise IngestError(f"{url}: only http and https URLs can be fetched")
    if not host:
        raise IngestError(f"{url}: the URL has no host")
    return parts, host, port or (443 if parts.scheme == "https" else 80)


def checked_addresses(host: str, port: int, allow_private: bool) -> list[str]:
    """Every address `host` resolves to (one lookup), all public unless `allow_private`;
    IngestError naming the first that is not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise IngestError(f"cannot resolve {host} ({exc})") from None
    addresses: list[str] = []
    for info in infos:
        text = str(info[4][0]).split("%")[0]
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
        # is_global also excludes shared (100.64/10, cloud metadata), documentation and other
        # special-purpose ranges that are neither "private" nor "reserved".
        if not allow_private and (not address.is_global or address.is_multicast):
            raise IngestError(
                f"{host} resolves to the non-public address {address}; "
                "set BOT_ALLOW_PRIVATE_URLS=1 to fetch from private networks"
            )
        if str(info[4][0]) not in addresses:
            addresses.append(str(info[4][0]))
    if not addresses:
        raise IngestError(f"cannot resolve {host} (no address)")
    return addresses


def check_address(url: str, allow_private: bool) -> None:
    """Refuse non-http(s) or unparsable URLs and hosts that resolve to a non-public address."""
    _, host, port = parse_url(url)
    if allow_private:
        return
    try:
        checked_addresses(host, port, allow_private)
    except IngestError as exc:
        raise IngestError(f"{url}: {exc}") from None


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
        # LookupError: no such codec, or not a text codec; UnicodeError (not only the Decode
        # kind): codecs such as idna raise their own; ValueError/TypeError: codecs that cannot
        # decode bytes at all. A page declaring any of them falls through to the next candidate.
        except (LookupError, UnicodeError, ValueError, TypeError):
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None or best.encoding is None:
        raise IngestError(f"{url}: the text is not UTF-8 and its encoding cannot be recognised")
    return str(best)


def _guarded_transport(allow_private: bool, deadline: float) -> httpx.HTTPTransport:
    """An httpx transport whose connections go only to checked addresses, within `deadline`."""
    import httpcore
    import httpx

    class DeadlineStream(httpcore.NetworkStream):
        """A socket stream whose reads and writes never wait past the fetch's deadline."""

        def __init__(self, inner: httpcore.NetworkStream) -> None:
            self.inner = inner

        def _left(self, timeout: float | None, error: type[Exception]) -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise error("the fetch's deadline has passed")
            return left if timeout is None else min(timeout, left)

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self.inner.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self.inner.write(buffer, self._left(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self.inner.close()

        def start_tls(
            self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
        ) -> httpcore.NetworkStream:
            left = self._left(timeout, httpcore.ConnectTimeout)
            return DeadlineStream(self.inner.start_tls(ssl_context, server_hostname, left))

        def get_extra_info(self, info: str) -> Any:
            return self.inner.get_extra_info(info)

    class GuardedBackend(httpcore.SyncBackend):
        """Resolve once, check every address, connect to a checked one (never a second lookup)."""

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore.NetworkStream:
            last: Exception | None = None
            for address in checked_addresses(host, port, allow_private):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise httpcore.ConnectTimeout("the fetch's deadline has passed")
                try:
                    stream = super().connect_tcp(
                        address, port, min(timeout or left, left), local_address, socket_options
                    )
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    last = exc
                    continue
                return DeadlineStream(stream)
            assert last is not None
            raise last

    transport = httpx.HTTPTransport(trust_env=False)
    # httpx builds its pool without a way to pass a network backend; the same pool, with ours.
    pool: Any = transport._pool
    transport._pool = httpcore.ConnectionPool(ssl_context=pool._ssl_context, network_backend=GuardedBackend())
    return transport


def fetch(
    url: str,
    *,
    allow_private: bool = False,
    accept: frozenset[str] | set[str] = HTML_TYPES | TEXT_TYPES,
    max_bytes: int = MAX_BYTES,
    timeout: float = TIMEOUT_SECONDS,
    validators: Validators | None = None,
) -> Page:
    """GET `url` within the limits above, in at most `timeout` seconds; IngestError says why not
    (FetchStatusError for an error status). With `validators`, a conditional GET."""
    import httpx

    current = url
    deadline = time.monotonic() + timeout
    with httpx.Client(
        transport=_guarded_transport(allow_private, deadline),
        follow_redirects=False,
        timeout=httpx.Timeout(timeout),
        # Only gzip: httpx would also offer deflate, brotli and zstd, and decode stacked encodings
        # ("gzip, gzip") whole, each network chunk at once, before any size check (a 1,827-byte
        # page of nested gzip took ~2 GB). `read_body` decodes gzip within the size limit.
        headers={
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "gzip",
            "Accept": ", ".join([*sorted(accept), "*/*;q=0.1"]),
            **(validators.headers() if validators else {}),
        },
        trust_env=False,
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            parse_url(current)
            try:
                with client.stream("GET", current) as response:
                    if response.status_code == 304 and validators is not None:  # (httpx counts 304 a redirect)
                        return Page(str(response.url), "", "", _validators(response, validators), not_modified=True)
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise IngestError(f"{current}: redirect without a Location header")
                        try:
                            current = urljoin(current, location)
                        except ValueError as exc:
                            raise IngestError(f"{current}: redirect to an invalid URL ({exc})") from None
                        continue
                    if response.status_code >= 400:
                        wait = retry_after(response.headers.get("retry-after"))
                        said = f" (retry after {wait:g} s)" if wait is not None else ""
                        raise FetchStatusError(
                            f"{current}: the server answered HTTP {response.status_code}{said}",
                            response.status_code,
                            wait,
                        )
                    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    if media_type not in accept:
                        wanted = ", ".join(sorted(accept))
                        raise IngestError(f"{current}: content type {media_type or 'none'!r} is not one of {wanted}")
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise IngestError(f"{current}: {int(declared)} bytes is over the {max_bytes}-byte limit")
                    body = read_body(response, max_bytes, current)
                    charset = _charset(response)
                    text = decode_body(body, charset, current)
                    return Page(str(response.url), media_type, text, _validators(response, Validators()))
            except FetchStatusError:
                raise
            except IngestError as exc:
                message = str(exc)
                raise IngestError(message if message.startswith(current) else f"{current}: {message}") from None
            except httpx.TimeoutException:
                raise IngestError(f"{current}: timed out after {timeout:g} s") from None
            except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
                raise IngestError(f"{current}: {type(exc).__name__}: {exc}") from None
    raise IngestError(f"{url}: more than {MAX_REDIRECTS} redirects")


def read_body(response: httpx.Response, max_bytes: int, url: str) -> bytes:
    """The body as sent, or gunzipped; IngestError past `max_bytes` of it, counted as the bytes
    are produced: a gzip bomb is cut off at the limit, never inflated whole first."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", *GZIP):
        raise IngestError(f"{url}: content encoding {encoding!r} is not supported (only gzip, once, or none)")
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in GZIP else None
    chunks: list[bytes] = []
    size = 0

    def keep(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > max_bytes:
            raise IngestError(f"{url}: the body is over the {max_bytes}-byte limit")
        chunks.append(chunk)

    try:
        for raw in response.iter_raw():
            if inflate is None:
                keep(raw)
                continue
            while raw and not inflate.eof:
                # A block at a time, and one byte past the limit at most.
                keep(inflate.decompress(raw, min(INFLATE_BLOCK, max_bytes - size + 1)))
                raw = inflate.unconsumed_tail
            if inflate.eof:  # whatever follows the gzip stream is not read
                break
        if inflate is not None:
            keep(inflate.flush())
    except zlib.error as exc:
        raise IngestError(f"{url}: the gzip body cannot be decoded ({exc})") from None
    return b"".join(chunks)


def _validators(response: httpx.Response, sent: Validators) -> Validators:
    """The response's ETag and Last-Modified; a 304 may repeat them or not (then the ones sent hold)."""
    etag = response.headers.get("etag") or sent.etag
    last_modified = response.headers.get("last-modified") or sent.last_modified
    return Validators(etag, last_modified)


def _charset(response: httpx.Response) -> str | None:
    """The declared charset, or None when the header's value is unusable."""
    try:
        return response.charset_encoding
    except (LookupError, ValueError):
        return None
