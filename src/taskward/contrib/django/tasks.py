"""How a Django `Task` is found from its stored path, and how its arguments travel.

**Finding.** A taskward row names its function by the Django Task's ``module_path``
(``"shop.tasks.send_receipt"``). `find_task` imports the module and returns the attribute only
if it is a Task object (of the backend's ``task_class``) whose own ``module_path`` is the
stored one; anything else (a plain function, a class, a missing module) is refused with the
reason, never called. Importing a module runs its top-level code, as Django's own loading of
``module_path`` does: whoever can write rows into the store can only pick among importable
modules and their decorated tasks.

**Arguments.** A call's positional and keyword arguments are stored as one JSON object
``{"args": [...], "kwargs": {...}}``: Django tasks take ``*args`` and ``**kwargs``, which
taskward's named-parameter model could not hold. They are checked where the task is enqueued
(`json_value`: JSON types only, no NaN; and a bind against the function's signature), so that
a bad call fails in the caller, and bound again in the worker before the call.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Mapping
from typing import Any

from taskward.contrib.django.compat import Task
from taskward.tasks import TaskFunction

__all__ = ["DjangoTaskFunction", "find_task", "json_value", "signature_of"]

# A dotted Python path: what a module path can be (anything else is refused unimported).
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


def find_task(path: str, task_class: type[Task[Any, Any]] = Task) -> Task[Any, Any] | str:
    """The Django Task whose ``module_path`` is ``path``, or why there is none (a sentence)."""
    if not isinstance(path, str) or not _DOTTED.fullmatch(path):
        return f"{path!r} is not a dotted path to a Django task"
    module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return f"{path!r} cannot be imported: {type(exc).__name__}: {exc}"
    except Exception as exc:  # the module's own code failed: say so, do not crash the worker
        return f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
    found = getattr(module, attribute, None)
    if found is None:
        return f"module {module_name!r} has no attribute {attribute!r}"
    if not isinstance(found, task_class):
        kind = type(found).__name__
        return f"{path!r} is not a Django task (a {kind}, not a {task_class.__name__}): refused"
    if found.module_path != path:
        # An alias of a task defined elsewhere: run it by its own path only.
        return f"{path!r} is an alias of the Django task {found.module_path!r}: refused"
    return found


def json_value(value: Any, where: str) -> Any:
    """``value`` as JSON types (tuples become lists); TypeError/ValueError saying where not.

    Stricter than JSON encoders that turn a datetime or a UUID into a string: the task would
    then get a string back where it was given something else.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value!r}, which JSON cannot hold")
        return value
    if isinstance(value, list | tuple):
        return [json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has the key {key!r}: JSON object keys are strings")
            out[key] = json_value(item, f"{where}[{key!r}]")
        return out
    raise TypeError(
        f"{where} is a {type(value).__name__}, which does not travel as JSON: pass str, int,"
        " float, bool, None, or lists and dicts of those"
    )


def signature_of(task: Task[Any, Any]) -> inspect.Signature:
    """The signature a call of ``task`` binds to: the function's, less ``context`` when the
    task takes one (the worker passes it)."""
    signature = inspect.signature(task.func)
    if task.takes_context:
        params = list(signature.parameters.values())[1:]
        signature = signature.replace(parameters=params)
    return signature


class DjangoTaskFunction(TaskFunction[Any, Any]):
    """The taskward task function of one Django task: arguments ``(args, kwargs)``, bound
    against the Django function's signature wherever they are validated (enqueue, the HTTP
    API, the CLI, and the worker before the call)."""

    django_task: Task[Any, Any]
    django_signature: inspect.Signature

    def _validate(self, args: Mapping[str, Any]) -> Any:
        model = super()._validate(args)
        values = {param: getattr(model, field) for param, field in self._fields.items()}
        try:
            self.django_signature.bind(*values["args"], **values["kwargs"])
        except TypeError as exc:
            raise self._error(str(exc)) from None
        return model
