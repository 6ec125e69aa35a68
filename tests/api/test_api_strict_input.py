"""What the API refuses as input, and how: bodies that are not strict JSON (NaN, Infinity,
repeated keys, nesting past 64 levels) and text no store holds alike (a NUL character, a lone
surrogate) are a 422 naming the place, on every store, never a 202 with a changed value nor
a 503 "store unavailable"."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import running

from taskward.api import TaskwardAPI
from taskward.app import App
from taskward.testing import memory_app


def build(url: str) -> App:
    app = App(url, default_task="keep") if url != "memory://" else memory_app(default_task="keep")

    @app.task(name="keep")
    async def keep(data: Any = None, n: int = 0, ratio: float = 1.0) -> Any:
        """Return what it was given."""
        return data

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client on the API of a memory-store app (the body checks come before any store)."""
    app = build("memory://")
    async with running(TaskwardAPI(app)) as c:
        yield c


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def any_store_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the API of an app on each store."""
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tasks.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    app = build(url)
    try:
        async with running(TaskwardAPI(app)) as c:
            yield c
    finally:
        await app.close()


async def post_raw(client: httpx.AsyncClient, path: str, body: str | bytes) -> httpx.Response:
    return await client.post(path, content=body, headers={"content-type": "application/json"})


def problems(response: httpx.Response) -> list[dict[str, Any]]:
    """The 422's problems, each checked to be in the documented shape."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    for item in detail:
        assert set(item) == {"loc", "msg", "type"}
        assert isinstance(item["msg"], str)
        assert item["msg"]
    return detail


async def stored(client: httpx.AsyncClient) -> int:
    return len((await client.get("/api/tasks")).json()["items"])


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


# -- strict JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ('{"args": {"data": NaN}}', ["body", "args", "data"], "NaN is not valid JSON"),
        ('{"args": {"data": Infinity}}', ["body", "args", "data"], "Infinity is not valid"),
        ('{"args": {"data": [1, -Infinity]}}', ["body", "args", "data", 1], "-Infinity is"),
        ('{"args": {"ratio": NaN}}', ["body", "args", "ratio"], "NaN is not valid JSON"),
        ('{"args": {"data": 1e400}}', ["body", "args", "data"], "too large for a float"),
        ('{"priority": NaN}', ["body", "priority"], "NaN is not valid JSON"),
        ('{"delay": Infinity}', ["body", "delay"], "Infinity is not valid JSON"),
        (
            '{"args": {"data": 1}, "args": {"data": 2}}',
            ["body"],
            "the key 'args' appears more than once",
        ),
        ('{"args": {"n": 1, "n": 2}}', ["body", "args"], "the key 'n' appears more than once"),
        (
            '{"args": {"data": {"a": {"k": 1, "k": 1}}}}',
            ["body", "args", "data", "a"],
            "the key 'k' appears",
        ),
        (
            '{"args": {"data": ' + nested(63) + "}}",
            ["body"],
            "nested deeper than 64 levels of arrays and objects",
        ),
        (nested(65), ["body"], "nested deeper than 64"),
    ],
)
async def test_a_body_that_is_not_strict_json_is_a_422_naming_the_place(
    client: httpx.AsyncClient, body: str, loc: list[str | int], words: str
) -> None:
    response = await post_raw(client, "/api/tasks", body)
    [problem] = problems(response)
    assert problem["loc"] == loc
    assert words in problem["msg"]
    assert problem["type"] == "json_invalid"
    assert await stored(client) == 0


async def test_64_levels_are_fine(client: httpx.AsyncClient) -> None:
    body = '{"args": {"data": ' + nested(62) + "}}"  # the body is 64 levels deep
    response = await post_raw(client, "/api/tasks", body)
    assert response.status_code == 202, response.text
    info = await client.get(response.headers["location"])
    assert info.json()["args"]["data"] == json.loads(nested(62))


async def test_the_string_nan_is_still_a_string(client: httpx.AsyncClient) -> None:
    response = await post_raw(client, "/api/tasks", '{"args": {"data": ["NaN", "Infinity"]}}')
    assert response.status_code == 202, response.text
    info = await client.get(response.headers["location"])
    assert info.json()["args"]["data"] == ["NaN", "Infinity"]


@pytest.mark.parametrize("path", ["/api/tasks", "/api/tasks/batch"])
async def test_a_batch_names_the_item(client: httpx.AsyncClient, path: str) -> None:
    body = '[{"args": {"data": 1}}, {"args": {"data": [NaN]}}]'
    [problem] = problems(await post_raw(client, path, body))
    assert problem["loc"] == ["body", 1, "args", "data", 0]
    dup = '[{"args": {"n": 1}}, {"name": "a", "name": "b"}]'
    [problem] = problems(await post_raw(client, path, dup))
    assert (problem["loc"], problem["msg"]) == (
        ["body", 1],
        "the key 'name' appears more than once in an object",
    )
    assert await stored(client) == 0


async def test_schedule_creation_is_strict_too(client: httpx.AsyncClient) -> None:
    base = '{"name": "s", "task": "keep", "cron": "0 * * * *", '
    for body, loc, words in [
        (base + '"args": {"data": NaN}}', ["body", "args", "data"], "NaN is not valid JSON"),
        (base + '"args": {"ratio": -Infinity}}', ["body", "args", "ratio"], "-Infinity"),
        (base + '"name": "t"}', ["body"], "the key 'name' appears more than once"),
        (base + '"args": {"data": ' + nested(63) + "}}", ["body"], "nested deeper than 64"),
    ]:
        [problem] = problems(await post_raw(client, "/api/schedules", body))
        assert (problem["loc"], problem["type"]) == (loc, "json_invalid")
        assert words in problem["msg"]
    assert (await client.get("/api/schedules")).json() == []


async def test_the_body_limit_still_answers_413_first(client: httpx.AsyncClient) -> None:
    too_big = '{"args": {"data": [' + "NaN," * 300_000 + "1]}}"
    response = await post_raw(client, "/api/tasks", too_big)
    assert response.status_code == 413
    assert "larger than the limit" in response.json()["detail"]
    # A body just within the limit made of brackets is a quick 422, not a crash.
    response = await post_raw(client, "/api/tasks", "[" * (1024 * 1024 - 1))
    assert response.status_code == 422
    assert "nested deeper than 64" in response.json()["detail"][0]["msg"]


async def test_the_422_shape_is_the_documented_one() -> None:
    app = build("memory://")
    async with running(TaskwardAPI(app)) as c:
        schema = (await c.get("/openapi.json")).json()
    responses = schema["paths"]["/api/tasks"]["post"]["responses"]
    assert responses["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationErrorBody"
    }
    assert "strict JSON" in responses["422"]["description"]
    for method in ("get", "delete"):
        assert "422" in schema["paths"]["/api/schedules/{name}"][method]["responses"]


# -- text a store cannot hold: the same answer on every store --------------------------------


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"name": "a\x00b"}, ["body", "name"], "name must not contain a NUL character"),
        ({"queue": "q\x00"}, ["body", "queue"], "queue must not contain a NUL character"),
        ({"task": "keep\x00"}, ["body", "task"], "unknown task"),
        ({"name": "x\ud800"}, ["body", "name"], "a string with a lone surrogate ('\\ud800')"),
        ({"queue": "\udfff"}, ["body", "queue"], "a string with a lone surrogate"),
        ({"args": {"data": ["\ud800"]}}, ["body", "args", "data", 0], "lone surrogate"),
    ],
)
async def test_text_no_store_can_hold_is_a_422_on_every_store(
    any_store_client: httpx.AsyncClient, body: dict[str, Any], loc: list[str], words: str
) -> None:
    # json.dumps writes a lone surrogate as its \\u escape, as a client would send it.
    response = await post_raw(any_store_client, "/api/tasks", json.dumps(body))
    [problem] = problems(response)
    assert problem["loc"] == loc
    assert words in problem["msg"]
    assert await stored(any_store_client) == 0


async def test_a_nul_inside_args_round_trips_on_every_store(
    any_store_client: httpx.AsyncClient,
) -> None:
    args = {"data": {"text": "a\x00b", "list": ["\x00", "é\x00😀"]}}
    response = await any_store_client.post("/api/tasks", json={"args": args})
    assert response.status_code == 202, response.text
    shown = (await any_store_client.get(response.headers["location"])).json()
    assert shown["args"]["data"] == args["data"]


@pytest.mark.parametrize("field", ["name", "queue", "task"])
@pytest.mark.parametrize("value", ["a\x00b", "\x00"])
async def test_a_list_filter_with_a_nul_is_a_422_on_every_store(
    any_store_client: httpx.AsyncClient, field: str, value: str
) -> None:
    response = await any_store_client.get("/api/tasks", params={field: value})
    [problem] = problems(response)
    assert problem["loc"] == ["query", field]
    assert f"{field} must not contain a NUL character" in problem["msg"]


async def test_schedule_names_with_a_nul_are_a_422_on_every_store(
    any_store_client: httpx.AsyncClient,
) -> None:
    body = {"name": "a\x00", "task": "keep", "cron": "0 * * * *"}
    [problem] = problems(await any_store_client.post("/api/schedules", json=body))
    assert problem["loc"] == ["body", "name"]
    assert "schedule name must not contain" in problem["msg"]  # a NUL, named
    for method, path in [
        ("GET", "/api/schedules/a%00b"),
        ("DELETE", "/api/schedules/a%00b"),
        ("POST", "/api/schedules/a%00b/pause"),
        ("POST", "/api/schedules/a%00b/resume"),
    ]:
        [problem] = problems(await any_store_client.request(method, path))
        assert problem["loc"] == ["path", "name"], (method, path)
    assert (await any_store_client.get("/api/schedules")).json() == []
