"""Which API a call goes to, and whether its outcome says that API was overloaded.

A limit (`execute.limits`) holds for an API.  These functions read a call the
way `limits.limit_for` needs, looking only into instance and class
dictionaries (never running a property or other user code):

- `candidates`: the objects a user may have named with `xcs.limit(target)`:
  the callee, the function behind a bound method, the object it is bound to,
  the client that object belongs to (the `_client` of an SDK resource, such as
  `client.chat.completions`), and the call's arguments (`summarize(client, doc)`);
- `call_host`: the host the call goes to, for clients the library knows: the
  clients of LLM SDKs that keep their base URL (`openai`, `anthropic`, and
  `groq`, `together`, `mistralai`, `cohere` when theirs do), called directly,
  through a resource (`client.chat.completions`) or handed to the call; and
  `httpx` and `requests` clients and their module-level functions.

`overloaded` says whether an exception or a returned response means "too many
requests" or "overloaded" (HTTP 429, 503, 529; `RateLimitError` of an SDK; or
an exception class the user named with `overload=`).
"""

from __future__ import annotations

import types
import urllib.parse
from typing import Any

from xcs_bc.ir import MISSING
from xcs_bc.ir.values import peek_attr

OVERLOAD_STATUS = frozenset({429, 503, 529})  # too many requests, unavailable, overloaded (Anthropic)
_SDK_LIBRARIES = frozenset({"openai", "anthropic", "mistralai", "groq", "together", "cohere"})
_HTTP_LIBRARIES = frozenset({"httpx", "httpx2", "requests"})
_HTTP_METHODS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "request", "stream"})


def host_of(text: str) -> str | None:
    """The host named by a URL or a bare "host[:port]", lower case; None if it names none."""
    text = text.strip()
    netloc = urllib.parse.urlsplit(text if "//" in text else f"//{text}").netloc
    return netloc.rpartition("@")[2].lower() or None  # (without a user:password@ part)


def candidates(callee: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """The objects a user may have named for this call, most specific first: the callee, the function
    behind a bound method, the object it is bound to and that object's client, then the arguments."""
    found = [callee]
    owner = _owner(callee)
    if owner is not None:
        found += [getattr(callee, "__func__", None), owner, _peek(owner, "_client")]
    found += args
    found += kwargs.values()
    return found


def _owner(callee: Any) -> Any:
    """The object a method is bound to (None for a plain function or a module's builtin)."""
    if type(callee) is types.MethodType:
        return callee.__self__
    if type(callee) is types.BuiltinMethodType and not isinstance(callee.__self__, types.ModuleType):
        return callee.__self__
    return None


def _peek(obj: Any, attr: str) -> Any:
    value = peek_attr(obj, attr)
    return None if value is MISSING else value


def _base_url(client: Any) -> Any:
    """An SDK client's base URL, as it keeps it (openai 3.63 and later keep `_configured_base_url`,
    `_base_url` being a property, which is not run), else None."""
    url = _peek(client, "_base_url")
    return url if url is not None else _peek(client, "_configured_base_url")


def call_host(callee: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The host of a call made through a client the library knows, else None."""
    owner = _owner(callee)
    if owner is not None:
        kind = _kind(type(owner).__module__)
        if kind == "sdk":  # an SDK client or resource (`client.chat.completions`): its base URL
            for obj in (owner, _peek(owner, "_client")):
                url = _base_url(obj) if obj is not None else None
                if url is not None:
                    return host_of(str(url))
        elif kind == "http":
            return _request_host(getattr(callee, "__name__", ""), args, kwargs, _peek(owner, "_base_url"))
    elif type(callee) is types.FunctionType and _kind(callee.__module__) == "http":  # requests.get
        return _request_host(callee.__name__, args, kwargs, None)
    # a call handed an SDK client (`summarize(client, doc)`): the client's host
    for arg in (*args, *kwargs.values()):
        if _kind(type(arg).__module__) == "sdk":
            url = _base_url(arg)
            if url is not None:
                return host_of(str(url))
    return None


_kinds: dict[str, str] = {}  # a module's name -> "sdk", "http" or "" (see _kind)


def _kind(module: Any) -> str:
    """Is the module an SDK's ("sdk"), an HTTP client library's ("http"), or another ("")?"""
    kind = _kinds.get(module)
    if kind is None:
        root = module.partition(".")[0] if isinstance(module, str) else ""
        kind = "sdk" if root in _SDK_LIBRARIES else "http" if root in _HTTP_LIBRARIES else ""
        if len(_kinds) < 10_000 and isinstance(module, str):  # (module names are few)
            _kinds[module] = kind
    return kind


def _request_host(method: str, args: tuple[Any, ...], kwargs: dict[str, Any], base: Any) -> str | None:
    """The host of an HTTP client's `get(url)`, `post(url)`, `request(method, url)`, `stream(...)`."""
    if method not in _HTTP_METHODS:
        return None
    position = 1 if method in ("request", "stream") else 0
    url = kwargs.get("url", args[position] if len(args) > position else None)
    if url is None:
        return None
    host = host_of(str(url))
    if host is None and base is not None:  # a path relative to the client's base URL
        host = host_of(str(base))
    return host


def overloaded(outcome: Any, extra: tuple[type[BaseException], ...] = ()) -> bool:
    """Does this exception, or this returned HTTP response, say the API was overloaded?  `extra`: more
    exception classes that say so (named by the user)."""
    if isinstance(outcome, BaseException):
        if extra and isinstance(outcome, extra):
            return True
        if type(outcome).__name__ == "RateLimitError":
            return True
        return _status(outcome) in OVERLOAD_STATUS or _status(_peek(outcome, "response")) in OVERLOAD_STATUS
    # a response returned by an HTTP client (the caller calls raise_for_status() itself, or not)
    return _kind(type(outcome).__module__) == "http" and _status(outcome) in OVERLOAD_STATUS


def _status(obj: Any) -> Any:
    return None if obj is None else _peek(obj, "status_code")


def retry_after(outcome: Any) -> float | None:
    """The seconds a 429/503 response asks the client to wait (its `Retry-After` header), if any."""
    response = outcome if not isinstance(outcome, BaseException) else _peek(outcome, "response")
    headers = _peek(response, "headers") if response is not None else None
    if headers is None:
        return None
    try:
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None
