"""A task function's arguments: their pydantic model, validation and JSON.

`TaskArguments` is the part of `taskward.tasks.TaskFunction` that turns a signature into an
argument model (the JSON Schema the HTTP API publishes), validates a call's arguments against
it and writes them as the JSON text stored with the task; the worker reads them back through
`TaskArguments.validate_json_args`. It is a mixin, not an object of its own, so that the hot
submit path (`_to_json(_bind(...))`) calls these methods with no layer in between.

Arguments are strict JSON (see `taskward.strictjson`): a NaN or an infinity anywhere in them,
also inside a list or a pydantic model, is refused rather than stored as null or a string.
Secret arguments (typed pydantic ``SecretStr``, ``Secret[...]``...) are stored with their
real value, which the worker passes on; pydantic alone would write stars (see `_with_secrets`).
"""

from __future__ import annotations

import inspect
import json
import typing
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import pydantic
import pydantic_core

from taskward.errors import ConfigurationError, InvalidArgumentsError, InvalidJSONError
from taskward.redact import PYDANTIC_SHOWN, Secrets, reveal, secrets_of
from taskward.strictjson import check_json_value, parse_strict_json

__all__ = ["TaskArguments", "format_validation_error"]

_MODEL_CONFIG = pydantic.ConfigDict(
    extra="forbid",
    protected_namespaces=(),
    # A non-finite float that reaches the text (all are refused before: see _to_json) is
    # written as a bare NaN / Infinity, which the last check there finds, rather than as
    # null or a string, which would silently change the argument.
    ser_json_inf_nan="constants",
)


def format_validation_error(error: pydantic.ValidationError) -> str:
    """One readable line per problem: ``"to: missing required argument; user_id: ..."``.

    Never includes the offending values: they may be secrets.
    """
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or "args"
        if item["type"] == "missing":
            message = "missing required argument"
        elif item["type"] == "extra_forbidden":
            message = "unexpected argument"
        else:
            message = item["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


# Types that JSON carries exactly (an unannotated parameter is Any).
_JSON_NATIVE: tuple[Any, ...] = (str, int, bool, Any, type(None), str | None, int | None)
# Types whose values are never floats nor nested: nothing in them for strict JSON to refuse.
_SCALARS: tuple[Any, ...] = (str, int, bool, type(None), str | None, int | None, bool | None)


class TaskArguments:
    """The argument methods of `taskward.tasks.TaskFunction`, which sets ``name`` and then
    calls `_init_arguments` for the attributes below."""

    name: str
    signature: inspect.Signature
    model: type[pydantic.BaseModel]
    secrets: Secrets
    _fields: dict[str, str]
    _positional: list[str]
    _schema: dict[str, Any]
    _has_secrets: bool
    _json_native: bool
    _scalars: bool

    def _init_arguments(self, fn: Callable[..., Any]) -> None:
        """Build the argument model of ``fn``; ConfigurationError if its arguments cannot
        travel as JSON."""
        self.signature = inspect.signature(fn)
        self._fields = self._field_names()
        self._positional = [
            p.name
            for p in self.signature.parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]
        self.model = self._build_model(fn)
        self._schema = self._build_schema()
        self.secrets = self._find_secrets()
        self._has_secrets = bool(self.secrets)
        # Arguments whose types are JSON's own come back from JSON unchanged: no need to
        # check the round trip on every submit (see _to_json).
        hints = typing.get_type_hints(fn)
        self._json_native = all(
            hints.get(name, Any) in _JSON_NATIVE for name in self.signature.parameters
        )
        self._scalars = all(hints.get(name, Any) in _SCALARS for name in self.signature.parameters)

    def _field_names(self) -> dict[str, str]:
        fields = {}
        for index, param in enumerate(self.signature.parameters.values()):
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                star = "*" if param.kind is param.VAR_POSITIONAL else "**"
                raise ConfigurationError(
                    f"task {self.name!r}: {star}{param.name} is not allowed: "
                    "arguments travel as JSON, so every parameter must be named"
                )
            if param.kind is param.POSITIONAL_ONLY:
                raise ConfigurationError(
                    f"task {self.name!r}: positional-only parameter {param.name!r} is not "
                    "allowed: arguments travel as JSON and are passed by name"
                )
            # Fields get neutral names and carry the parameter's name as their alias, so a
            # parameter may be called "json", "schema" or "_x" without clashing with pydantic.
            fields[param.name] = f"arg_{index}"
        return fields

    def _build_model(self, fn: Callable[..., Any]) -> type[pydantic.BaseModel]:
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as exc:
            raise ConfigurationError(
                f"task {self.name!r}: cannot resolve its type hints: {type(exc).__name__}: {exc}"
            ) from None
        definitions: dict[str, Any] = {}
        for param in self.signature.parameters.values():
            annotation = hints.get(param.name, Any)
            if param.default is param.empty:
                field = pydantic.Field(alias=param.name)
            else:
                try:
                    pydantic_core.to_json(param.default)
                except pydantic_core.PydanticSerializationError:
                    raise ConfigurationError(
                        f"task {self.name!r}: the default of {param.name!r} "
                        f"({type(param.default).__name__}) is not JSON-serialisable"
                    ) from None
                field = pydantic.Field(param.default, alias=param.name)
            definitions[self._fields[param.name]] = (annotation, field)
        config = pydantic.ConfigDict(**_MODEL_CONFIG, title=self.name)
        try:
            model: type[pydantic.BaseModel] = pydantic.create_model(
                "TaskArgs", __config__=config, **definitions
            )
        except pydantic.PydanticSchemaGenerationError:
            # pydantic's own message is about pydantic (arbitrary_types_allowed, core
            # schemas): advice for a model's author, not for a task function's.
            raise ConfigurationError(
                f"task {self.name!r}: {self._unreadable_argument(hints)}"
            ) from None
        return model

    def _find_secrets(self) -> Secrets:
        """Where the arguments typed as secrets (pydantic's SecretStr, Secret[...]) are."""
        fields = self.model.model_fields.values()
        return secrets_of({field.alias or "": field.annotation for field in fields})

    def _unreadable_argument(self, hints: Mapping[str, Any]) -> str:
        """Which argument's type pydantic cannot read from JSON, and what to do about it."""
        for param in self.signature.parameters.values():
            annotation = hints.get(param.name, Any)
            try:
                pydantic.TypeAdapter(annotation)
            except pydantic.PydanticSchemaGenerationError:
                shown = getattr(annotation, "__qualname__", None) or repr(annotation)
                return (
                    f"argument {param.name!r} has type {shown}, which cannot travel as JSON:"
                    " annotate it with a JSON type (str, int, float, bool, None, list, dict),"
                    " a pydantic model or a dataclass of those"
                )
        return "an argument's type cannot travel as JSON"

    def _build_schema(self) -> dict[str, Any]:
        # Built eagerly so that a type with no JSON Schema fails at decoration time.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                return self.model.model_json_schema(by_alias=True)
        except Exception as exc:
            first = str(exc).strip().partition("\n")[0]  # pydantic adds advice and a URL
            raise ConfigurationError(
                f"task {self.name!r}: its arguments have no JSON Schema: {first}"
            ) from None

    def args_schema(self) -> dict[str, Any]:
        """The JSON Schema of the arguments, with their defaults."""
        return json.loads(json.dumps(self._schema))  # type: ignore[no-any-return]

    def _error(self, detail: str) -> InvalidArgumentsError:
        return InvalidArgumentsError(
            f"invalid arguments for task {self.name!r}: {detail}", field="args"
        )

    def _validate(self, args: Mapping[str, Any]) -> pydantic.BaseModel:
        if type(args) is not dict:  # the common case skips an ABC check and a copy
            if not isinstance(args, Mapping):
                raise self._error(f"args must be a mapping of names to values, got {args!r}")
            args = dict(args)
        try:
            # The model's own validator: `model_validate` less its Python wrapper.
            return self.model.__pydantic_validator__.validate_python(args)  # type: ignore[no-any-return]
        except pydantic.ValidationError as exc:
            raise self._error(format_validation_error(exc)) from None

    def _to_json(self, args: Mapping[str, Any]) -> str:
        """The arguments validated, as the JSON text stored with the task."""
        model = self._validate(args)
        serializer = self.model.__pydantic_serializer__
        try:
            if not self._scalars:
                # Strict JSON, checked on the Python values: in the text a NaN may already
                # be a null or a string (a nested model serialises floats by its own config).
                check_json_value(serializer.to_python(model, by_alias=True))
            # `model_dump_json(by_alias=True)` less its Python wrapper.
            text = serializer.to_json(model, by_alias=True).decode()
            if self._has_secrets or PYDANTIC_SHOWN in text:
                text = self._with_secrets(model)
            elif "NaN" in text or "Infinity" in text:
                parse_strict_json(text)  # raises if one is a bare constant, not in a string
        except InvalidJSONError as exc:
            raise self._error(str(exc)) from None
        except pydantic_core.PydanticSerializationError as exc:
            where = self._unserialisable(model)
            raise self._error(f"{where}not JSON-serialisable: {exc}") from None
        if not self._json_native:
            # A value that serialises but does not validate back (a custom type with a lossy
            # encoder) would fail later in the worker: fail here, in the caller, instead.
            self.validate_json_args(json.loads(text))
        return text

    def _with_secrets(self, model: pydantic.BaseModel) -> str:
        """The JSON text of the arguments with the real values of their secrets.

        pydantic writes a secret as ``"**********"`` in JSON: stored so, the worker would get
        the stars. (A secret can also hide in an argument typed ``Any``, hence the look for
        the stars.) Shown values are redacted elsewhere (`taskward.redact`).
        """
        serializer = self.model.__pydantic_serializer__
        shown = serializer.to_python(model, by_alias=True, mode="json")
        real = serializer.to_python(model, by_alias=True)
        return pydantic_core.to_json(reveal(shown, real), inf_nan_mode="strings").decode()

    def _unserialisable(self, model: pydantic.BaseModel) -> str:
        """``"<parameter>: "`` of the first argument that does not serialise, else ``""``."""
        serializer = self.model.__pydantic_serializer__
        for param, field in self._fields.items():
            try:
                serializer.to_json(model, include={field})
            except pydantic_core.PydanticSerializationError:
                return f"{param}: "
        return ""

    def bind(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Bind a call's arguments to parameter names; return them validated, as JSON values."""
        data: dict[str, Any] = json.loads(self._to_json(self._bind(args, kwargs)))
        return data

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        # Positional arguments are named here; missing and unknown names are the model's to
        # report (inspect.Signature.bind would cost more than the validation itself).
        if not args:
            return kwargs  # a dict of the call's own
        if len(args) > len(self._positional):
            raise self._error(
                f"takes {len(self._positional)} positional arguments but {len(args)} were given"
            )
        bound = dict(zip(self._positional, args, strict=False))
        for key in kwargs:
            if key in bound:
                raise self._error(f"got multiple values for argument {key!r}")
        bound.update(kwargs)
        return bound

    def validate_json_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Validate JSON arguments; return the keyword arguments to call the function with."""
        model = self._validate(args)
        return {param: getattr(model, field) for param, field in self._fields.items()}

    def dump_result(self, value: Any) -> str | None:
        """The JSON text of a result (None stays None); ValueError if it is not JSON-able."""
        if value is None:
            return None
        try:
            return pydantic_core.to_json(value, inf_nan_mode="strings").decode()
        except pydantic_core.PydanticSerializationError as exc:
            raise ValueError(
                f"the result of task {self.name!r} ({type(value).__name__}) is not "
                f"JSON-serialisable: {exc}"
            ) from None
