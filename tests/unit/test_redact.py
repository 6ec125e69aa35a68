"""Secret arguments: found by type and by name, shown as ***, masked in error texts."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Optional, TypedDict

import pydantic
import pytest
from pydantic import BaseModel, Field, Secret, SecretBytes, SecretStr

from taskward.models import Status, TaskInfo
from taskward.redact import (
    DEFAULT_REDACT,
    HIDDEN,
    mask,
    redact_args,
    redaction_names,
    secret_values,
    secrets_of,
)
from taskward.scheduler import Schedule, ScheduleInfo
from taskward.testing import memory_app

NO_NAMES: tuple[str, ...] = ()
CODE_KEY = SecretStr("kkkk")  # a default in code
DEFAULTS = redaction_names({})


class Creds(BaseModel):
    user: str
    token_value: SecretStr = Field(alias="tokenValue")


class Node(BaseModel):
    """A recursive model: its secrets are found at every depth."""

    key: SecretStr | None = None
    children: list[Node] = []


@dataclasses.dataclass
class Pin:
    code: Secret[int]
    label: str = ""


class Signed(TypedDict):
    blob: SecretBytes
    note: str


def test_the_default_list_and_the_env_override() -> None:
    assert redaction_names({}) == tuple(sorted(DEFAULT_REDACT.split(",")))
    assert redaction_names({"TASKWARD_REDACT": " PIN, Session-Id ,,"}) == ("pin", "session_id")
    assert redaction_names({"TASKWARD_REDACT": ""}) == ()


def test_names_match_as_substrings_at_any_depth_case_insensitive() -> None:
    args = {
        "db_password": "p4ssw0rd",
        "user": "ann",
        "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k-123", "Accept": "*/*"},
        "items": [{"secret_note": "s3cret", "n": 1}],
        "max_tokens": 100,
        "passwd": None,
    }
    assert redact_args(args, names=DEFAULTS) == {
        "db_password": HIDDEN,
        "user": "ann",
        "headers": {"Authorization": HIDDEN, "X-Api-Key": HIDDEN, "Accept": "*/*"},
        "items": [{"secret_note": HIDDEN, "n": 1}],
        "max_tokens": HIDDEN,  # errs on the side of hiding
        "passwd": None,  # "not given" stays visible
    }
    assert args["db_password"] == "p4ssw0rd", "the input is left as it is"
    assert redact_args(args, names=NO_NAMES) == args


def test_a_named_object_or_list_is_hidden_whole() -> None:
    args = {"credentials": {"user": "u", "key": "k"}, "tokens": ["a", "b"], "other": [1]}
    assert redact_args(args, names=DEFAULTS) == {
        "credentials": HIDDEN,
        "tokens": HIDDEN,
        "other": [1],
    }


def test_secrets_by_type_top_level_optional_nested_and_in_containers() -> None:
    secrets = secrets_of(
        {
            "url": str,
            "key": SecretStr,
            "maybe": Optional[SecretBytes],  # noqa: UP045 - the typing spelling on purpose
            "pin": Annotated[Secret[int], "meta"],
            "creds": Creds | None,
            "many": list[Creds],
            "by_host": dict[str, SecretStr],
            "tree": Node,
            "code": Pin,
            "signed": Signed,
            "free": Any,
        }
    )
    args = {
        "url": "https://x",
        "key": "k1",
        "maybe": None,
        "pin": 1234,
        "creds": {"user": "u", "tokenValue": "t1"},
        "many": [{"user": "v", "tokenValue": "t2"}],
        "by_host": {"a": "h1", "b": "h2"},
        "tree": {"key": "n1", "children": [{"key": "n2", "children": []}]},
        "code": {"code": 42, "label": "front door"},
        "signed": {"blob": "b1", "note": "hi"},
        "free": {"k": "v"},
    }
    assert redact_args(args, secrets, NO_NAMES) == {
        "url": "https://x",
        "key": HIDDEN,
        "maybe": None,
        "pin": HIDDEN,
        "creds": {"user": "u", "tokenValue": HIDDEN},
        "many": [{"user": "v", "tokenValue": HIDDEN}],
        "by_host": {"a": HIDDEN, "b": HIDDEN},
        "tree": {"key": HIDDEN, "children": [{"key": HIDDEN, "children": []}]},
        "code": {"code": HIDDEN, "label": "front door"},
        "signed": {"blob": HIDDEN, "note": "hi"},
        "free": {"k": "v"},
    }
    assert sorted(secret_values(args, secrets, NO_NAMES)) == sorted(
        ["k1", "1234", "t1", "t2", "h1", "h2", "n1", "n2", "42", "b1"]
    )


def test_no_secret_types_means_no_secrets() -> None:
    assert not secrets_of({"a": int, "b": list[str], "c": dict[str, Any], "d": str | None})
    assert not secrets_of({"a": pydantic.BaseModel})


def test_secret_values_by_name_take_every_leaf() -> None:
    args = {"credentials": {"user": "bob", "pin": 98765, "ok": True}, "name": "n"}
    assert sorted(secret_values(args, None, DEFAULTS)) == ["98765", "bob"]


def test_mask_replaces_each_value_and_its_escaped_forms() -> None:
    secret = "s3cr'et\\value/+ü"
    text = (
        f"plain {secret}; repr {secret!r}; json {json.dumps(secret)}; "
        f"url https://h/?k=s3cr%27et%5Cvalue%2F%2B%C3%BC; bytes {secret.encode()!r}"
    )
    masked = mask(text, [secret])
    assert "s3cr" not in masked
    assert masked.count(HIDDEN) == 5


def test_mask_replaces_the_longer_value_first_and_skips_short_ones() -> None:
    assert mask("key abcdef and abcd and ab", ["abcd", "abcdef", "ab"]) == (
        "key *** and *** and ab"
    )
    assert mask("nothing to hide", []) == "nothing to hide"


def test_task_info_to_json_hides_by_name_always_and_by_type_when_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKWARD_REDACT", raising=False)
    info = TaskInfo(
        name=None,
        status=Status.PENDING,
        created_at=datetime.now(UTC),
        task="call",
        args={"url": "u", "key": "kkkk", "password": "pppp"},
    )
    assert info.to_json()["args"] == {"url": "u", "key": "kkkk", "password": HIDDEN}
    typed = secrets_of({"key": SecretStr})
    assert info.to_json(typed)["args"] == {"url": "u", "key": HIDDEN, "password": HIDDEN}
    assert info.args is not None
    assert info.args["password"] == "pppp", "the Python value keeps the real value"
    monkeypatch.setenv("TASKWARD_REDACT", "url")
    assert info.to_json()["args"] == {"url": HIDDEN, "key": "kkkk", "password": "pppp"}


def test_schedule_info_to_json_hides_secret_args(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKWARD_REDACT", raising=False)
    schedule = Schedule(name="s", task="t", args={"api_key": "aaaa", "n": 1}, every=60)
    info = ScheduleInfo(schedule=schedule, paused=False, last_tick=None, next_tick=None)
    assert info.to_json()["args"] == {"api_key": HIDDEN, "n": 1}


def test_app_secrets_and_task_types_hide_secret_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKWARD_REDACT", raising=False)
    app = memory_app()

    @app.task(name="call")
    async def call(url: str = "u", key: SecretStr = CODE_KEY, token: str = "tttt") -> None:
        pass

    assert app.secrets("call") is call.secrets
    assert app.secrets("nope") is None
    assert app.secrets(None) is None
    [types] = app.task_types()
    props = types["args"]["properties"]
    assert props["url"]["default"] == "u"
    assert "tttt" not in json.dumps(types)
    assert "kkkk" not in json.dumps(types)


async def test_secrets_are_stored_with_their_real_values() -> None:
    """pydantic writes a secret as stars in JSON: the stored arguments must not be stars."""
    app = memory_app()

    @app.task(name="call")
    async def call(
        url: str,
        api_key: SecretStr,
        blob: SecretBytes | None = None,
        pin: Secret[int] | None = None,
        creds: Creds | None = None,
        default_key: SecretStr = CODE_KEY,
        free: Any = None,
        ratio: float = 1.5,
    ) -> None:
        pass

    info = await call.submit(
        url="https://x",
        api_key=SecretStr("sk-real"),
        blob=b"raw-bytes",
        pin=0,  # pydantic shows an empty display ("") for a falsy secret
        creds={"user": "u", "tokenValue": "t-real"},
        free={"nested": SecretStr("in-any")},
    )
    assert info.id is not None
    row = await (await app.connect()).get(info.id)
    assert row is not None
    assert json.loads(row.args) == {
        "url": "https://x",
        "api_key": "sk-real",
        "blob": "raw-bytes",
        "pin": 0,
        "creds": {"user": "u", "tokenValue": "t-real"},
        "default_key": "kkkk",
        "free": {"nested": "in-any"},
        "ratio": 1.5,
    }
    # What the worker calls the function with: the secret types, holding the real values.
    kwargs = call.validate_json_args(json.loads(row.args))
    assert kwargs["api_key"] == SecretStr("sk-real")
    assert kwargs["blob"].get_secret_value() == b"raw-bytes"
    assert kwargs["pin"].get_secret_value() == 0
    assert kwargs["creds"].token_value.get_secret_value() == "t-real"
    await app.close()


async def test_a_task_without_secret_types_stores_a_literal_star_string() -> None:
    app = memory_app()

    @app.task(name="echo")
    async def echo(text: str) -> None:
        pass

    info = await echo.submit(text="**********")
    assert info.id is not None
    row = await (await app.connect()).get(info.id)
    assert row is not None
    assert json.loads(row.args) == {"text": "**********"}
    await app.close()
