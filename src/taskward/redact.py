"""Secret arguments: which they are, how they are shown (``***``), and masking their values.

An argument is secret when its type is pydantic's ``SecretStr``, ``SecretBytes`` or
``Secret[...]`` (also inside ``Optional``, a list or dict of them, or a field of a pydantic
model, dataclass or TypedDict argument), or when its name, or a key of a JSON object at any
depth of the arguments, contains one of the redaction names (``TASKWARD_REDACT``).

Decisions a user may notice:

- **Names match as substrings**, case-insensitive, with ``-`` read as ``_``: ``password``
  hides ``db_password`` and ``X-Api-Key`` is caught by ``api_key``, as Django's sensitive
  settings filter does. It errs on the side of hiding (``max_tokens`` is hidden by
  ``token``); ``TASKWARD_REDACT`` replaces the default list (an empty value: no names).
- **A hidden value is shown as "***"**, whatever its type (a whole object or list too);
  a null stays null, so "not given" can still be told apart.
- **Types need the task function.** Where it is not registered (the CLI without ``--app``,
  an API serving another app), only the names apply.
- **Masking text** replaces every occurrence of a secret value (and of its ``repr``, JSON
  and URL-quoted forms) with ``***``. Values shorter than `MIN_MASKED` characters are left
  alone: replacing "ab" everywhere would wreck a traceback, and the pattern of stars would
  give the value away anyway.

Everything here is pure (but for reading ``TASKWARD_REDACT``): the stores keep the real
values; what is shown is made here.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Union
from urllib.parse import quote, quote_plus

import pydantic
import pydantic_core
from typing_extensions import is_typeddict

__all__ = [
    "DEFAULT_REDACT",
    "HIDDEN",
    "MIN_MASKED",
    "PYDANTIC_SHOWN",
    "Secrets",
    "mask",
    "redact_args",
    "redaction_names",
    "reveal",
    "secret_values",
    "secrets_of",
]

#: The names hidden when ``TASKWARD_REDACT`` is not set.
DEFAULT_REDACT = "password,passwd,secret,token,api_key,apikey,authorization,credentials,private_key"
#: What a hidden value is shown as.
HIDDEN = "***"
#: Secret values shorter than this are not masked in error texts (see the module docstring).
MIN_MASKED = 4
#: What pydantic writes for a non-empty secret in JSON.
PYDANTIC_SHOWN = "**********"

_SECRET_TYPES = (pydantic.SecretStr, pydantic.SecretBytes, pydantic.Secret)


@dataclass(eq=False, repr=False, slots=True)
class Secrets:
    """Where the secrets are in a JSON value: all of it (``whole``), under some of its
    object keys (``keys``), or in each item of a list or each value of an object (``each``).

    A recursive model gives a graph with cycles; it is walked along a value, which ends.
    """

    whole: bool = False
    keys: dict[str, Secrets] = field(default_factory=dict)
    each: Secrets | None = None

    def __bool__(self) -> bool:
        """True when a secret is anywhere in it."""
        todo, seen = [self], set()
        while todo:
            node = todo.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.whole:
                return True
            todo.extend(node.keys.values())
            if node.each is not None:
                todo.append(node.each)
        return False

    def __repr__(self) -> str:
        return "Secrets(whole)" if self.whole else f"Secrets(keys={sorted(self.keys)})"


_WHOLE = Secrets(whole=True)  # shared: never changed


def _merge(
    a: Secrets | None, b: Secrets | None, memo: dict[tuple[int, int], Secrets] | None = None
) -> Secrets | None:
    """Secrets of both (for a union of types); a new node, the inputs are left as they are."""
    if a is None:
        return b
    if b is None or a is b:
        return a
    if a.whole or b.whole:
        return _WHOLE
    memo = {} if memo is None else memo
    done = memo.get((id(a), id(b)))
    if done is not None:
        return done  # a cycle of a recursive type, merged already
    out = memo[(id(a), id(b))] = Secrets(keys=dict(a.keys))
    for key, sub in b.keys.items():
        merged = _merge(out.keys.get(key), sub, memo)
        if merged is not None:
            out.keys[key] = merged
    out.each = _merge(a.each, b.each, memo)
    return out


def secrets_of(params: Mapping[str, Any]) -> Secrets:
    """Where a task function's secrets are, from its parameters' types (by name)."""
    memo: dict[type, Secrets] = {}
    keys = {}
    for name, annotation in params.items():
        found = _shape(annotation, memo)
        if found is not None and found:
            keys[name] = found
    return Secrets(keys=keys)


def _shape(tp: Any, memo: dict[type, Secrets]) -> Secrets | None:
    """Where the secrets are in a value of type ``tp`` (None: nowhere)."""
    alias_value = getattr(tp, "__value__", None)  # `type X = ...` (Python 3.12+)
    if alias_value is not None and type(tp).__name__ == "TypeAliasType":
        return _shape(alias_value, memo)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        return _shape(args[0], memo)
    if origin in (Union, types.UnionType):
        found: Secrets | None = None
        for member in args:
            found = _merge(found, _shape(member, memo))
        return found
    cls = origin if isinstance(origin, type) else tp
    if not isinstance(cls, type):
        return None  # Any, Literal, a TypeVar...
    try:
        if issubclass(cls, _SECRET_TYPES):
            return _WHOLE
        fields = _fields(cls)
        if fields is not None:
            node = memo.get(cls)
            if node is None:  # else a recursive type: the node being built
                node = memo[cls] = Secrets()
                for key, annotation in fields.items():
                    sub = _shape(annotation, memo)
                    if sub is not None:
                        node.keys[key] = sub
            return node
        if issubclass(cls, str | bytes | bytearray) or not issubclass(cls, Collection):
            return None
    except TypeError:  # an odd class that issubclass refuses
        return None
    items = args[1:] if issubclass(cls, Mapping) else args
    each: Secrets | None = None
    for item in items:
        if item is not Ellipsis:
            each = _merge(each, _shape(item, memo))
    return None if each is None else Secrets(each=each)


def _fields(cls: type) -> dict[str, Any] | None:
    """The JSON keys of a structured type and their types (None: not a structured type)."""
    if issubclass(cls, pydantic.BaseModel):
        return {
            # Arguments are stored by alias; a field's serialization alias wins.
            (f.serialization_alias or f.alias or name): f.annotation
            for name, f in cls.model_fields.items()
        }
    try:
        if dataclasses.is_dataclass(cls):
            hints = typing.get_type_hints(cls)
            return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}
        if is_typeddict(cls):
            return typing.get_type_hints(cls)
    except Exception:  # unresolvable hints: pydantic would have refused them already
        return None
    return None


# -- names -------------------------------------------------------------------------------


def redaction_names(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The redaction names: ``TASKWARD_REDACT`` (comma-separated), else `DEFAULT_REDACT`."""
    spec = (os.environ if env is None else env).get("TASKWARD_REDACT")
    return _parse_names(DEFAULT_REDACT if spec is None else spec)


@functools.lru_cache(maxsize=16)
def _parse_names(spec: str) -> tuple[str, ...]:
    names = {_normal(part.strip()) for part in spec.split(",")}
    return tuple(sorted(name for name in names if name))


def _normal(name: str) -> str:
    return name.lower().replace("-", "_")


def _is_secret_name(key: object, names: tuple[str, ...]) -> bool:
    if not names or not isinstance(key, str):
        return False
    normal = _normal(key)
    return any(name in normal for name in names)


# -- showing -------------------------------------------------------------------------------


def redact_args(
    args: Mapping[str, Any], secrets: Secrets | None = None, names: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """A copy of JSON arguments with each secret value shown as ``"***"``.

    ``secrets``: where the task function's types put secrets (None: unknown, names only);
    ``names``: the redaction names (None: `redaction_names`).
    """
    names = redaction_names() if names is None else names
    return {
        key: _hidden(value)
        if _is_secret_name(key, names)
        else _redact(value, None if secrets is None else secrets.keys.get(key), names)
        for key, value in args.items()
    }


def _hidden(value: Any) -> Any:
    return None if value is None else HIDDEN


def _redact(value: Any, secrets: Secrets | None, names: tuple[str, ...]) -> Any:
    if secrets is not None and secrets.whole:
        return _hidden(value)
    each = None if secrets is None else secrets.each
    if isinstance(value, dict):
        keys: Mapping[str, Secrets] = {} if secrets is None else secrets.keys
        return {
            key: _hidden(item)
            if _is_secret_name(key, names)
            else _redact(item, _merge(keys.get(key), each), names)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item, each, names) for item in value]
    return value


# -- masking -------------------------------------------------------------------------------


def secret_values(
    args: Mapping[str, Any], secrets: Secrets | None = None, names: tuple[str, ...] | None = None
) -> list[str]:
    """The text of every secret value in JSON arguments (strings and numbers), to `mask`."""
    names = redaction_names() if names is None else names
    out: list[str] = []
    _collect(args, Secrets() if secrets is None else secrets, names, out, hidden=False)
    return out


def _collect(
    value: Any, secrets: Secrets | None, names: tuple[str, ...], out: list[str], hidden: bool
) -> None:
    hidden = hidden or (secrets is not None and secrets.whole)
    each = None if secrets is None else secrets.each
    if isinstance(value, dict):
        keys: Mapping[str, Secrets] = {} if secrets is None else secrets.keys
        for key, item in value.items():
            sub = _merge(keys.get(key), each)
            _collect(item, sub, names, out, hidden or _is_secret_name(key, names))
    elif isinstance(value, list):
        for item in value:
            _collect(item, each, names, out, hidden)
    elif hidden and isinstance(value, str):
        out.append(value)
    elif hidden and isinstance(value, int | float) and not isinstance(value, bool):
        out.append(str(value))


def _forms(value: str) -> Iterator[str]:
    """The ways a value may appear in an error text: as it is, and escaped."""
    yield value
    yield repr(value)[1:-1]
    yield json.dumps(value)[1:-1]
    yield json.dumps(value, ensure_ascii=False)[1:-1]
    yield quote(value, safe="")
    yield quote_plus(value)
    yield repr(value.encode("utf-8", "surrogatepass"))[2:-1]


def mask(text: str, values: Iterable[str]) -> str:
    """``text`` with every occurrence of each value (and its escaped forms) as ``***``.

    Values shorter than `MIN_MASKED` characters are left alone. Longer forms are replaced
    first, so a value that contains another is masked whole.
    """
    forms = {form for value in values if len(value) >= MIN_MASKED for form in _forms(value)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, HIDDEN)
    return text


# -- storing ------------------------------------------------------------------------------


def reveal(shown: Any, real: Any) -> Any:
    """JSON values (``shown``, pydantic's JSON-mode dump, secrets as ``"**********"``) with
    each secret's real value, taken from ``real`` (the Python-mode dump of the same model).

    pydantic writes secrets as stars in JSON; a task's stored arguments need the value.
    """
    if isinstance(real, _SECRET_TYPES):
        return pydantic_core.to_jsonable_python(real.get_secret_value())
    if isinstance(real, Mapping) and isinstance(shown, dict) and len(real) == len(shown):
        return {
            key: reveal(item, real_item)
            for (key, item), real_item in zip(shown.items(), real.values(), strict=True)
        }
    if (
        isinstance(real, list | tuple | set | frozenset)
        and isinstance(shown, list)
        and len(real) == len(shown)
    ):
        return [reveal(item, real_item) for item, real_item in zip(shown, real, strict=True)]
    return shown
