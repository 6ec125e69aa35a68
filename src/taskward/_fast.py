"""Speed tricks of the hot paths, kept here so the public types stay plain dataclasses.

Each trick is measured (the figures are from this project's 2-core VM, Python 3.11) and has
tests of its own (tests/unit/test_fast.py). Nothing outside taskward should import this.

- `record_factory(cls)`: a function that builds a frozen, slotted, keyword-only dataclass
  from the same keyword arguments as the class, storing each field through its slot. A
  frozen dataclass's own ``__init__`` calls ``object.__setattr__`` once per field, which
  looks the field up by name each time, and calling a class passes the keywords through a
  dict to ``__new__`` and then ``__init__``: building a `TaskRecord` (13 fields) this way
  costs a little over half (about 1.35 us against 2.35 us). The stores build records, the
  app `TaskInfo`s and `prepare` the `NewTask`s by the thousand.
- `uuid_from_int(value)`: ``UUID(int=value)`` without its range checks, for a value known to
  be in range (as Python 3.14's ``UUID._from_int``): about a third of the cost. Every task
  id is made by it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import MemberDescriptorType
from typing import Any, TypeVar
from uuid import UUID, SafeUUID

__all__ = ["record_factory", "uuid_from_int"]

_T = TypeVar("_T")
_FACTORIES: dict[type, Callable[..., Any]] = {}


def record_factory(cls: type[_T]) -> Callable[..., _T]:
    """``cls(**fields)``, cheaper, for a frozen, slotted, keyword-only dataclass without
    ``__post_init__``, default factories, ``InitVar`` or ``init=False`` fields. One
    function per class, made on first use. It is typed loosely (``...``): call it from a
    function whose own parameters are typed."""
    make = _FACTORIES.get(cls)
    if make is None:
        make = _FACTORIES[cls] = _make_factory(cls)
    return make


def _make_factory(cls: type[_T]) -> Callable[..., _T]:
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    plain = all(f.init and f.default_factory is dataclasses.MISSING for f in fields)
    slots = all(isinstance(cls.__dict__.get(f.name), MemberDescriptorType) for f in fields)
    extra = len(fields) != len(cls.__annotations__)  # InitVar or ClassVar
    if not (plain and slots) or extra or hasattr(cls, "__post_init__"):
        raise TypeError(f"record_factory does not handle {cls.__name__}")
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    params, lines = [], []
    for f in fields:
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            env[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        env[f"_slot_{f.name}"] = cls.__dict__[f.name].__set__
        lines.append(f"    _slot_{f.name}(self, {f.name})")
    body = "\n".join(lines)
    source = f"def make(*, {', '.join(params)}):\n    self = _new(_cls)\n{body}\n    return self\n"
    exec(source, env)  # our own fixed text, as dataclasses itself does
    make: Callable[..., _T] = env["make"]
    make.__qualname__ = f"record_factory({cls.__qualname__})"
    return make


def uuid_from_int(value: int) -> UUID:
    """``UUID(int=value)`` for a value known to be in range, without its checks."""
    uid = object.__new__(UUID)
    object.__setattr__(uid, "int", value)
    object.__setattr__(uid, "is_safe", SafeUUID.unknown)
    return uid
