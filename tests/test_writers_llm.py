"""The LLM writer against a real local HTTP server that speaks /v1/chat/completions.

Every reply is scripted: good JSON, fenced JSON, malformed then repaired, always malformed,
truncated, slow, refused, empty, HTTP errors; plus a closed port. No real network.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from autokose.bible import Bible, builtin_bible
from autokose.errors import InputError
from autokose.story import MAX_SCENES, Beat, Language, Shot, Story
from autokose.writers import get_writer
from autokose.writers.common import scene_seed
from autokose.writers.llm import LLMWriter, extract_json, load_settings

LOGLINE = "Aldar Köse shows the greedy Bai a shining golden egg while the servants whisper."
LOGLINE_RU = "Алдар Косе показывает Баю «золотое яйцо»."


def draft(captions: tuple[str, str, str] = ("Dawn on the road.", "The egg shines.", "Off he rides.")) -> dict:
    """A three-scene draft (setup, trick, resolution) as a model would write it."""
    return {
        "title": "The Golden Egg",
        "scenes": [
            {"beat": "setup", "setting": "road", "time": "dawn", "shot": "establishing", "angle": "high",
             "characters": [{"id": "Aldar Köse", "pose": "riding", "emotion": "cheerful"},
                            {"id": "donkey", "pose": "walk"}],
             "caption": captions[0], "action": "Aldar rides his donkey along the road."},
            {"beat": "trick", "setting": "the Bai's yurt", "time": "day", "shot": "medium",
             "characters": [{"id": "aldar", "pose": "hold", "emotion": "sly", "holds": "golden egg"},
                            {"id": "the Bai", "pose": "leaning forward", "emotion": "amazed"},
                            {"id": "shepherd", "pose": "stand"}],
             "props": ["golden egg"], "caption": captions[1], "dialogue": "Aldar Köse: “A golden hen!”",
             "action": "Aldar shows the Bai the egg."},
            {"beat": "resolution", "setting": "steppe", "time": "dusk", "shot": "wide",
             "characters": [{"id": "aldar", "pose": "ride", "emotion": "happy"}],
             "caption": captions[2], "action": "Aldar rides off."},
        ],
    }


@dataclass
class Reply:
    content: str | None = ""
    status: int = 200
    finish_reason: str = "stop"
    delay: float = 0.0
    refusal: str | None = None
    when: Callable[[dict], bool] | None = None  # only if the request matches, else the next reply


def good(**kw) -> Reply:
    return Reply(json.dumps(draft(**kw), ensure_ascii=False))


@dataclass
class FakeLLM:
    """Scripted replies, one per request; the last one repeats."""

    replies: list[Reply] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    base_url: str = ""

    def next(self, body: dict) -> Reply:
        for n, reply in enumerate(self.replies):
            if reply.when is None or reply.when(body):
                return self.replies.pop(n) if len(self.replies) > 1 else reply
        raise AssertionError("no scripted reply fits the request")


@pytest.fixture
def llm():
    fake = FakeLLM()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            reply = fake.next(body)
            time.sleep(reply.delay)
            if reply.status != 200:
                payload = {"error": {"message": f"scripted HTTP {reply.status}", "type": "error"}}
            else:
                message = {"role": "assistant", "content": reply.content, "refusal": reply.refusal}
                payload = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                           "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
            data = json.dumps(payload).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_port}/v1"
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def bible() -> Bible:
    return builtin_bible()


@pytest.fixture(autouse=True)
def no_llm_env(monkeypatch):
    for name in ("AUTOKOSE_LLM_BASE_URL", "AUTOKOSE_LLM_MODEL", "AUTOKOSE_LLM_API_KEY", "OPENAI_API_KEY",
                 "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def writer(fake: FakeLLM, **options) -> LLMWriter:
    return get_writer("llm", base_url=fake.base_url, model="tiny-test", **options)


def write(w: LLMWriter, bible: Bible, logline: str = LOGLINE, scenes: int = 3, seed: int = 5) -> Story:
    return w.write(logline, scenes=scenes, seed=seed, bible=bible)


# -- good replies -------------------------------------------------------------------------------


def test_good_json_becomes_a_story_built_from_the_bible(llm, bible, caplog):
    llm.replies = [good()]
    with caplog.at_level(logging.WARNING, logger="autokose.writers"):
        story = write(writer(llm, api_key="sk-test"), bible)
    assert story.title == "The Golden Egg" and story.language == Language.en
    assert [s.beat for s in story.scenes] == [Beat.setup, Beat.trick, Beat.resolution]
    setup, trick, _ = story.scenes
    assert setup.characters == ["aldar", "donkey"] and setup.direction("aldar").pose == "ride"
    assert trick.setting == "yurt" and trick.props == ["golden_egg"]
    assert trick.direction("aldar").holds == "golden_egg"
    assert trick.direction("bai").pose == "bow"
    assert "shepherd" not in trick.characters and "shepherd" in caplog.text
    assert "aldarkose" in trick.prompt and "greedybai" in trick.prompt and trick.prompt.startswith(story.style)
    assert [s.seed for s in story.scenes] == [scene_seed(5, i) for i in (1, 2, 3)]
    assert {c.id for c in story.characters} >= {"aldar", "bai", "donkey"}
    assert Story.from_json(story.to_json()) == story


def test_the_request_carries_context_cast_plan_and_json_mode(llm, bible):
    llm.replies = [good()]
    write(writer(llm, api_key="sk-test"), bible)
    [request] = llm.requests
    body = request["body"]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert body["model"] == "tiny-test" and body["response_format"] == {"type": "json_object"}
    assert body["seed"] == 5
    system, user = body["messages"]
    for needle in ("Aldar Köse", "tymak", "chapan", "donkey", "bai", "servant1", "greedy", "respect",
                   "close_up", "insert", "trick"):
        assert needle in system["content"], needle
    assert LOGLINE in user["content"] and "English" in user["content"]
    assert "1 setup, 2 trick, 3 resolution" in user["content"]


def test_fenced_json_inside_prose_is_found(llm, bible):
    llm.replies = [Reply("Here is your storyboard:\n```json\n" + json.dumps(draft()) + "\n```\nEnjoy!")]
    assert len(write(writer(llm), bible).scenes) == 3


def test_the_logline_cast_is_completed_in_the_key_moment(llm, bible):
    llm.replies = [good()]
    story = write(writer(llm), bible, logline=LOGLINE)
    trick = story.scenes[1]
    assert {"aldar", "bai", "servant1", "servant2"} <= set(trick.characters)


# -- repair loop ----------------------------------------------------------------------------------


def test_malformed_then_good_is_repaired(llm, bible):
    llm.replies = [Reply('{"title": "x", "scenes": [ {"beat": "setup",'), good()]
    story = write(writer(llm), bible)
    assert len(llm.requests) == 2 and len(story.scenes) == 3
    repair = llm.requests[1]["body"]["messages"]
    assert repair[-2]["role"] == "assistant" and repair[-1]["role"] == "user"
    assert "invalid JSON" in repair[-1]["content"]


def test_schema_errors_are_sent_back_naming_the_field(llm, bible):
    bad = draft()
    bad["scenes"][1]["shot"] = "panorama"
    llm.replies = [Reply(json.dumps(bad)), good()]
    write(writer(llm), bible)
    assert "scenes[1].shot" in llm.requests[1]["body"]["messages"][-1]["content"]


def test_wrong_scene_count_and_wrong_language_are_repaired(llm, bible):
    llm.replies = [Reply(json.dumps({"title": "t", "scenes": draft()["scenes"][:2]})), good()]
    write(writer(llm), bible)
    assert "expected exactly 3 scenes" in llm.requests[1]["body"]["messages"][-1]["content"]

    llm.requests.clear()
    llm.replies = [good(), good(captions=("Рассвет.", "Яйцо сияет.", "Он уезжает."))]
    story = write(writer(llm), bible, logline=LOGLINE_RU)
    assert story.language == Language.ru and story.scenes[0].caption == "Рассвет."
    assert "not in Russian" in llm.requests[1]["body"]["messages"][-1]["content"]


def test_always_malformed_gives_up_after_bounded_retries(llm, bible):
    llm.replies = [Reply("not json at all, sorry about that {")]
    with pytest.raises(InputError, match=r"3 attempt\(s\).*invalid JSON"):
        write(writer(llm), bible)
    assert len(llm.requests) == 3

    llm.requests.clear()
    with pytest.raises(InputError, match="1 attempt"):
        write(writer(llm, max_retries=0), bible)
    assert len(llm.requests) == 1


# -- failures that are not retried ----------------------------------------------------------------


def test_truncated_reply_is_a_clear_error(llm, bible):
    llm.replies = [Reply('{"title": "The Golden', finish_reason="length")]
    with pytest.raises(InputError, match="cut off.*finish_reason=length"):
        write(writer(llm), bible)
    assert len(llm.requests) == 1


def test_slow_server_times_out_quickly(llm, bible):
    llm.replies = [Reply(json.dumps(draft()), delay=1.0)]
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"did not answer within 0\.2 s"):
        write(writer(llm, timeout=0.2), bible)
    assert time.perf_counter() - t0 < 0.9, "no transport retries multiply the wait"
    assert len(llm.requests) == 1


@pytest.mark.parametrize(("status", "needle"), [
    (401, "rejected the API key"),
    (403, "denied access"),
    (404, "no model 'tiny-test'"),
    (500, "answered HTTP 500"),
])
def test_http_errors_are_one_line(llm, bible, status, needle):
    llm.replies = [Reply(status=status)]
    with pytest.raises(InputError, match=needle) as info:
        write(writer(llm), bible)
    assert "\n" not in str(info.value)


def test_connection_refused_names_the_base_url(bible):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    w = get_writer("llm", base_url=url, model="m")
    with pytest.raises(InputError, match=f"cannot connect to the LLM at {url}"):
        write(w, bible)


@pytest.mark.parametrize("reply", [
    Reply("I'm sorry, but I can't help with that request."),
    Reply(None, refusal="I cannot write this."),
])
def test_refusals_are_reported(llm, bible, reply):
    llm.replies = [reply]
    with pytest.raises(InputError, match="refused"):
        write(writer(llm), bible)
    assert len(llm.requests) == 1


def test_empty_reply_is_reported(llm, bible):
    llm.replies = [Reply("   ")]
    with pytest.raises(InputError, match="empty reply"):
        write(writer(llm), bible)


def test_servers_without_json_mode_are_asked_again_without_it(llm, bible):
    llm.replies = [Reply(status=400, when=lambda body: "response_format" in body), good()]
    w = writer(llm)
    assert len(write(w, bible).scenes) == 3
    assert [("response_format" in r["body"]) for r in llm.requests] == [True, False]
    llm.requests.clear()
    write(w, bible)
    assert "response_format" not in llm.requests[0]["body"], "remembered for the next story"


def test_bad_requests_fail_before_any_network(llm, bible):
    with pytest.raises(InputError, match="logline is empty"):
        writer(llm).write("  ", scenes=3, seed=0, bible=bible)
    with pytest.raises(InputError, match="scenes must be between"):
        writer(llm).write(LOGLINE, scenes=MAX_SCENES + 1, seed=0, bible=bible)
    assert llm.requests == []


# -- settings -----------------------------------------------------------------------------------------


def test_settings_precedence_explicit_over_file_over_env(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOKOSE_LLM_BASE_URL", "http://env:1/v1")
    monkeypatch.setenv("AUTOKOSE_LLM_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    toml = tmp_path / "llm.toml"
    toml.write_text('model = "file-model"\ntimeout = 12.5\nmax_retries = 4\n', encoding="utf-8")
    s = load_settings(toml, model="explicit-model")
    assert (s.base_url, s.model, s.api_key, s.timeout, s.max_retries) == (
        "http://env:1/v1", "explicit-model", "sk-env", 12.5, 4)
    assert load_settings(toml).model == "file-model"
    assert load_settings().model == "env-model"
    monkeypatch.setenv("AUTOKOSE_LLM_API_KEY", "sk-autokose")
    assert load_settings().api_key == "sk-autokose", "AUTOKOSE_ variables win over OPENAI_ ones"


def test_yaml_config_and_an_llm_table(tmp_path):
    yml = tmp_path / "llm.yaml"
    yml.write_text("llm:\n  base_url: http://localhost:11434/v1\n  model: llama3.1\n", encoding="utf-8")
    s = load_settings(yml)
    assert (s.base_url, s.model, s.timeout, s.max_retries) == ("http://localhost:11434/v1", "llama3.1", 60, 2)


@pytest.mark.parametrize(("text", "suffix", "needle"), [
    ('model = "m"\ncolour = "red"\n', ".toml", "unknown setting 'colour'"),
    ('model = "m"\ntimeout = -1\n', ".toml", "timeout"),
    ("model = [", ".toml", "not valid TOML"),
    ("- just\n- a list\n", ".yaml", "expected a table"),
])
def test_bad_config_files_are_input_errors(tmp_path, text, suffix, needle):
    path = tmp_path / f"llm{suffix}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=needle):
        load_settings(path)


def test_missing_model_or_config_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="needs a model"):
        get_writer("llm", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(InputError, match="not found"):
        get_writer("llm", config=str(tmp_path / "nope.toml"))
    with pytest.raises(InputError, match="no option 'colour'"):
        get_writer("llm", model="m", colour="red")


def test_extract_json():
    assert extract_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('Sure! {"a": {"b": [1, 2]}} Hope it helps.') == {"a": {"b": [1, 2]}}
    with pytest.raises(ValueError, match="no JSON object"):
        extract_json("nothing here")
    with pytest.raises(ValueError, match="invalid JSON"):
        extract_json('{"a": ')


def test_names_and_group_words_map_to_bible_ids_and_unknown_ones_are_dropped(llm, bible):
    reply = draft()
    reply["scenes"][2]["characters"] += [{"id": "camel", "pose": "stand"},
                                         {"id": "слуги", "pose": "laugh", "emotion": "laughing"}]
    llm.replies = [Reply(json.dumps(reply, ensure_ascii=False))]
    story = write(writer(llm), bible)
    last = story.scenes[2]
    assert last.characters == ["aldar", "servant1", "servant2"]
    assert last.direction("servant2").pose == "laugh"
    assert story.scenes[0].shot == Shot.establishing


def test_the_model_says_who_stands_behind_in_a_place_field(llm, bible):
    """`place` is read in any language ("позади", "back row"); unknown or missing words leave the front row."""
    reply = draft()
    reply["scenes"][1]["characters"] += [{"id": "servant1", "pose": "stand", "place": "позади"},
                                         {"id": "servant2", "pose": "stand", "place": "back row"},
                                         {"id": "baibishe", "pose": "stand", "place": "next to the fire"}]
    reply["scenes"][1]["characters"][1]["place"] = "left"
    llm.replies = [Reply(json.dumps(reply, ensure_ascii=False))]
    story = write(writer(llm), bible)
    trick = story.scenes[1]
    assert [trick.direction(c).place for c in trick.characters] == [None, "left", "behind", "behind", None]
    system = llm.requests[0]["body"]["messages"][0]["content"]
    assert '"place": null' in system and "places: behind, front, left, right" in system


# -- fidelity to the logline ------------------------------------------------------------------------


def test_animals_and_custom_names_the_model_leaves_out_are_added_to_the_key_moment(llm, bible):
    logline = "Aldar Köse shows the greedy Bai a golden egg while a wolf and Zhantyk watch."
    llm.replies = [good()]
    story = write(writer(llm), bible, logline=logline)
    trick = story.scenes[1]
    kinds = {c.id: c.kind for c in story.characters}
    assert "zhantyk" in trick.characters and kinds["zhantyk"] == "human"
    assert any(kinds[cid] == "wolf" for cid in trick.characters)
    assert "Zhantyk" in llm.requests[0]["body"]["messages"][0]["content"]  # the model is told they exist
    assert len(llm.requests) == 1


def test_a_logline_prop_the_model_leaves_out_is_added(llm, bible):
    llm.replies = [good()]
    story = write(writer(llm), bible, logline="Aldar Köse shows the Bai a golden egg and a magic whip.")
    assert "whip" in story.scenes[1].props


def test_a_place_the_model_never_uses_is_sent_back_then_refused_in_one_line(llm, bible):
    logline = "Aldar Köse shows the greedy Bai a golden egg at the bazaar."
    at_bazaar = draft()
    at_bazaar["scenes"][1]["setting"] = "bazaar"
    llm.replies = [good(), Reply(json.dumps(at_bazaar))]
    assert write(writer(llm), bible, logline=logline).scenes[1].setting == "bazaar"
    assert "leaves out" in llm.requests[1]["body"]["messages"][-1]["content"]

    llm.requests.clear()
    llm.replies = [good()]
    with pytest.raises(InputError, match=r"leaves out what the logline names: place 'bazaar'") as e:
        write(writer(llm), bible, logline=logline)
    assert "\n" not in str(e.value) and len(llm.requests) == 3
