"""`negtemp serve`: llama.cpp's server from the patched tree, driven by the real openai client."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import openai
import pytest

import negtemp
from negtemp.schema import SCHEMA, default
from serving import post, running_server, start_server, stop_server

pytestmark = pytest.mark.real_model

PROMPT = "Temperature is a concept"
TIE = 0.05  # logits this close count as a tie: the server's batched decode rounds differently


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, smollm2_path):
    with running_server(tmp_path_factory.mktemp("serve"), "-m", "smollm2-135m", "-np", "8", "-c", "2048", "-t", "2") as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def model(smollm2_path):
    with negtemp.Model(smollm2_path, n_ctx=256, n_threads=2) as m:
        yield m


def token_ids(choice) -> list[int]:
    """The generated token ids, from llama-server's logprobs ("content": [{"id": ...}])."""
    return [int(t["id"]) for t in choice.logprobs.content]


def check_each_token_is_extreme(model, prompt_ids, ids, lowest: bool, what: str) -> None:
    logits = model.logits(np.concatenate([prompt_ids, ids]))[len(prompt_ids) - 1 : -1]
    for i, (z, t) in enumerate(zip(logits, ids, strict=True)):
        gap = z[t] - z.min() if lowest else z.max() - z[t]
        assert gap <= TIE, f"{what}: token {i} ({t}) is {gap:.3f} logits from the {'least' if lowest else 'most'} likely"


def clear_prefix(model, prompt_ids, ids, lowest: bool) -> int:
    """How many leading tokens were decided by a margin above TIE (where two samplers must agree)."""
    logits = model.logits(np.concatenate([prompt_ids, ids]))[len(prompt_ids) - 1 : -1]
    for i, z in enumerate(logits):
        two = np.sort(z)[:2] if lowest else -np.sort(-z)[:2]
        if abs(two[1] - two[0]) <= TIE:
            return i
    return len(ids)


def complete(client, temperature: float, prompt: str = PROMPT, max_tokens: int = 24):
    return client.completions.create(model="smollm2-135m", prompt=prompt, temperature=temperature,
                                     max_tokens=max_tokens, seed=1, logprobs=1)


def test_a_negative_temperature_request_gets_the_least_likely_tokens(client, model):
    r = complete(client, -0.001)
    ids = token_ids(r.choices[0])
    prompt_ids = model.tokenize(PROMPT)
    assert len(ids) == 24 and r.usage.prompt_tokens == len(prompt_ids)
    check_each_token_is_extreme(model, prompt_ids, ids, lowest=True, what="T = -0.001 over the server")
    ours = model.complete(PROMPT, -0.001, seed=1, n_predict=24).tokens.tolist()
    n = min(clear_prefix(model, prompt_ids, ids, True), clear_prefix(model, prompt_ids, np.array(ours), True))
    assert n >= 4 and ids[:n] == ours[:n], "the server and negtemp.Model disagree where both are anti-greedy"


def test_a_small_positive_temperature_request_is_greedy(client, model):
    ids = token_ids(complete(client, 0.001).choices[0])
    check_each_token_is_extreme(model, model.tokenize(PROMPT), ids, lowest=False, what="T = +0.001 over the server")


def test_the_anti_greedy_check_rejects_what_an_unpatched_server_returns(client, model):
    """Upstream's server clamps T = -0.001 to 0: greedy text, which the check above must reject."""
    greedy = token_ids(complete(client, 0.0).choices[0])
    with pytest.raises(AssertionError, match="least likely"):
        check_each_token_is_extreme(model, model.tokenize(PROMPT), greedy, lowest=True, what="greedy text")


def test_the_default_chain_is_the_experiments_temperature_then_the_draw(base_url):
    params = json.load(urllib.request.urlopen(f"{base_url[: -len('/v1')]}/props"))["default_generation_settings"]
    p = params["params"]
    assert p["samplers"] == ["penalties", "top_k", "top_p", "min_p", "temperature"]
    assert (p["top_k"], p["top_p"], p["min_p"], p["repeat_penalty"]) == (0, 1.0, 0.0, 1.0), "filters are not neutral"
    # every default negtemp serve sets is the library's, from the one table (/props shows the sampling ones;
    # a request's length is params_base's, which it does not show)
    defaults = {s.field: default(s.name) for s in SCHEMA.values() if s.server_flag and s.field != "n_predict"}
    assert set(defaults) >= {"temperature", "top_k", "repeat_last_n"}
    assert {f: pytest.approx(p[f]) for f in defaults} == defaults
    body = json.dumps({"prompt": PROMPT, "ignore_eos": True}).encode()
    status, text = post(base_url[: -len("/v1")], "/completion", body)
    assert status == 200 and json.loads(text)["tokens_predicted"] == default("n_predict"), text[:300]


def test_chat_streams_the_same_text_it_returns_whole(client):
    messages = [{"role": "user", "content": "Say something about temperature."}]
    whole = client.chat.completions.create(model="smollm2-135m", messages=messages, temperature=-0.001,
                                           max_tokens=16, seed=3)
    parts = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="smollm2-135m", messages=messages, temperature=-0.001, max_tokens=16, seed=3, stream=True)
        if c.choices]
    assert whole.choices[0].message.content and "".join(parts) == whole.choices[0].message.content


def test_concurrent_requests_at_mixed_temperatures_each_sample_their_own(client, model):
    jobs = [(f"{PROMPT} number {i}", -0.001 if i % 2 else 0.001) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda job: complete(client, job[1], job[0], 12), jobs))
    for (prompt, temp), r in zip(jobs, results, strict=True):
        check_each_token_is_extreme(model, model.tokenize(prompt), token_ids(r.choices[0]), lowest=temp < 0,
                                    what=f"{prompt!r} at T = {temp} among 8 concurrent requests")


@pytest.mark.parametrize(
    "path, body, message",
    [
        ("/completions", b'{"prompt": "x", "temperature": "abc"}', "temperature"),
        ("/completions", b'{"prompt": "x", "temperature": NaN}', "parse error"),
        ("/completions", b'{"prompt": "x", "temperature": 1e999}', "overflow"),
        ("/completions", b'{"prompt": "x",', "parse error"),
        ("/completions", json.dumps({"prompt": "word " * 200_000, "max_tokens": 4}).encode(), "context size"),
        ("/no-such-route", b"{}", "Not Found"),
    ],
    ids=["string-temperature", "nan-temperature", "overflowing-temperature", "malformed-json", "1mb-prompt",
         "unknown-route"],
)
def test_a_bad_request_gets_a_4xx_with_a_message_and_the_server_keeps_serving(base_url, client, path, body, message):
    status, text = post(base_url, path, body)
    assert 400 <= status < 500 and message in text, f"expected a 4xx saying {message!r}, got {status}: {text[:300]}"
    assert complete(client, -0.001, max_tokens=2).choices[0].text, "the server stopped serving after a bad request"


def test_the_openai_client_sees_a_bad_temperature_as_a_bad_request(client):
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.completions.create(model="smollm2-135m", prompt=PROMPT, temperature="abc", max_tokens=2)


N_VOCAB = 49152  # SmolLM2's


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"logit_bias": {str(N_VOCAB): 5}}, f"logit_bias token {N_VOCAB} is outside the vocabulary"),
        ({"logit_bias": {"-1": 5}}, "logit_bias token -1 is outside the vocabulary"),
        ({"logit_bias": {str(2**32 + 5): 5}}, "logit_bias token 4294967301 is outside the vocabulary"),
        ({"frequency_penalty": 0.5}, "frequency_penalty at a negative temperature"),
        ({"dry_multiplier": 0.8}, "dry_multiplier at a negative temperature"),
        ({"mirostat": 2}, "mirostat at a negative temperature"),
    ],
    ids=["bias-past-vocab", "bias-negative", "bias-past-32-bits", "frequency-penalty", "dry", "mirostat"],
)
def test_a_request_the_library_cannot_sample_at_negative_temperature_gets_a_400_naming_it(client, model, settings,
                                                                                          message):
    with pytest.raises(openai.BadRequestError, match=message):
        client.completions.create(model="smollm2-135m", prompt=PROMPT, temperature=-0.5, max_tokens=2,
                                  extra_body=settings)


@pytest.mark.parametrize("bias", [N_VOCAB, -1])
def test_the_library_refuses_the_bias_tokens_the_server_refuses(model, bias):
    with pytest.raises(ValueError, match=f"logit_bias token {bias} is outside the vocabulary"):
        model.complete(PROMPT, -0.5, n_predict=2, logit_bias={bias: 5.0})


def test_top_logprobs_past_the_vocabulary_report_the_whole_vocabulary_as_the_library_does(base_url, model):
    status, text = post(base_url[: -len("/v1")], "/completion",
                        json.dumps({"prompt": PROMPT, "n_probs": 10**6, "n_predict": 1}).encode())
    assert status == 200, text[:300]
    served = json.loads(text)["completion_probabilities"][0]["top_logprobs"]
    ours = model.complete(PROMPT, 0.7, n_predict=1, n_probs=10**6).top_logprobs[0]
    assert len(served) == len(ours) == N_VOCAB


def test_a_request_with_a_bias_and_top_k_samples_what_the_library_samples(client, model):
    # the least likely token of the first step banned, in both: the server must honour the bias as the library does
    prompt_ids = model.tokenize(PROMPT)
    first = int(np.argmin(model.logits(prompt_ids)[-1]))
    settings = {"logit_bias": {str(first): -100.0}, "top_k": 40}
    r = client.completions.create(model="smollm2-135m", prompt=PROMPT, temperature=-0.001, max_tokens=12, seed=1,
                                  logprobs=1, extra_body=settings)
    ids = token_ids(r.choices[0])
    ours = model.complete(PROMPT, -0.001, seed=1, n_predict=12, top_k=40, logit_bias={first: -100.0}).tokens
    assert ids[0] != first and ids[:4] == ours[:4].tolist(), "the server and negtemp.Model disagree on the same chain"


def test_a_repeat_penalty_at_a_positive_temperature_is_applied(client):
    # penalties sit in the default chain, so a request's repeat_penalty is not ignored
    prompt = "the the the the the the the the"
    served = token_ids(client.completions.create(
        model="smollm2-135m", prompt=prompt, temperature=0.001, max_tokens=6, seed=1, logprobs=1,
        extra_body={"repeat_penalty": 3.0, "repeat_last_n": 64}).choices[0])
    plain = token_ids(client.completions.create(model="smollm2-135m", prompt=prompt, temperature=0.001,
                                                max_tokens=6, seed=1, logprobs=1).choices[0])
    assert served != plain, "the server ignored repeat_penalty: penalties are not in its default chain"


def test_a_repeat_penalty_at_a_positive_temperature_samples_what_the_library_samples(client, model):
    prompt = "the the the the the the the the"
    served = token_ids(client.completions.create(model="smollm2-135m", prompt=prompt, temperature=0.001, max_tokens=8,
                                                 seed=1, logprobs=1, extra_body={"repeat_penalty": 3.0}).choices[0])
    ours = model.complete(prompt, 0.001, seed=1, n_predict=8, repeat_penalty=3.0).tokens
    assert served[:4] == ours[:4].tolist(), "the server and negtemp.Model disagree on the same penalty"


def test_at_negative_temperature_the_server_mirrors_the_repeat_penalty_as_the_library_does(client, model):
    # anti-greedy text repeats its tokens: cut it just before its first repeat, so that the next token is already in
    # the penalty's window. Mirrored, the penalty makes it less likely (upstream's, on z, would make it more likely),
    # and the server draws what the library draws
    ids = model.tokenize(PROMPT).tolist()
    plain = model.complete(ids, -0.001, seed=1, n_predict=64).tokens.tolist()
    cut = next(j for j, t in enumerate(plain) if t in plain[:j])
    prompt = ids + plain[:cut]
    ours = model.complete(prompt, -0.001, seed=1, n_predict=4, repeat_penalty=3.0).tokens.tolist()
    served = token_ids(client.completions.create(model="smollm2-135m", prompt=prompt, temperature=-0.001, max_tokens=4,
                                                 seed=1, logprobs=1, extra_body={"repeat_penalty": 3.0}).choices[0])
    assert ours[0] != plain[cut], "the library's mirrored penalty did not push the repeated token away"
    assert served == ours, "the server and negtemp.Model disagree on the penalty at T < 0"


@pytest.mark.parametrize("free, mib", [(24 * 2**30, 3072), (200 * 2**30, 8192), (None, 8192), (2**20, 0)])
def test_the_prompt_cache_is_an_eighth_of_free_memory_at_most_upstreams_default(monkeypatch, free, mib):
    from negtemp import serve

    monkeypatch.setattr(serve, "available_memory", lambda: free)
    cmd = serve.server_command(serve.ServeOptions(), negtemp.registry.resolve("smollm2-135m"))
    assert cmd[cmd.index("--cache-ram") + 1] == str(mib)
    given = serve.server_command(serve.ServeOptions(cache_ram=100), negtemp.registry.resolve("smollm2-135m"))
    assert given[given.index("--cache-ram") + 1] == "100"


def test_sigterm_stops_the_server_cleanly_and_frees_its_port(tmp_path, smollm2_path):
    with open(tmp_path / "server.log", "w") as log:
        proc, url = start_server("-m", str(smollm2_path), "-np", "1", "-c", "128", log=log)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        started = time.monotonic()
        assert stop_server(proc) == 0, f"negtemp serve exited {proc.returncode} on SIGTERM"
    assert time.monotonic() - started < 20
    assert "server stopped" in (tmp_path / "server.log").read_text()
    with socket.socket() as s:
        # no listener left (SO_REUSEADDR: closed connections may linger in TIME_WAIT)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


@pytest.mark.parametrize("args, message", [(("--port", "0"), "port"), (("-np", "0"), "parallel"),
                                           (("-c", "8"), "n_ctx"), (("--cache-ram", "-2"), "cache_ram")],
                         ids=["port", "parallel", "context", "cache-ram"])
def test_bad_serve_options_are_refused_before_a_server_starts(args, message):
    r = subprocess.run([sys.executable, "-m", "negtemp", "serve", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr and r.stdout == "", r.stderr


def test_n_choices_follow_seeds_seed_plus_i_as_the_library_draws_them(client, model):
    # llama-server seeds choice i with seed + i, as Model.draws does; at T = -1 with top_k the draws differ,
    # and each agrees with the library's draw for its seed over its leading tokens decided by a clear margin
    r = client.completions.create(model="smollm2-135m", prompt=PROMPT, temperature=-1.0, max_tokens=8, seed=11,
                                  n=3, logprobs=1, extra_body={"top_k": 40})
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    served = {c.index: token_ids(c) for c in r.choices}
    assert len({tuple(ids) for ids in served.values()}) > 1, "the n choices did not draw independently"
    ours = model.draws(PROMPT, -1.0, n=3, seed=11, n_predict=8, top_k=40)
    for i, c in enumerate(ours):
        alone = model.complete(PROMPT, -1.0, seed=11 + i, n_predict=8, top_k=40)
        assert served[i][:4] == c.tokens[:4].tolist() == alone.tokens[:4].tolist(), f"choice {i} (seed {11 + i})"


def test_more_choices_than_the_server_has_slots_get_a_400(base_url):
    status, text = post(base_url, "/completions",
                        json.dumps({"prompt": PROMPT, "n": 9, "max_tokens": 2, "temperature": -1.0}).encode())
    assert status == 400 and "n" in text


SERVE_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 6}, "count": {"type": "integer", "minimum": 0,
                                                                         "maximum": 99},
                   "kind": {"enum": ["cold", "hot"]}},
    "required": ["name", "count", "kind"], "additionalProperties": False,
}


def test_a_json_schema_request_at_negative_temperature_gets_json_that_validates(client):
    import jsonschema

    for seed in range(4):
        r = client.completions.create(model="smollm2-135m", prompt="A JSON object:", temperature=-1.0,
                                      max_tokens=200, seed=seed, extra_body={"json_schema": SERVE_SCHEMA})
        assert r.choices[0].finish_reason == "stop", r.choices[0].text
        jsonschema.validate(json.loads(r.choices[0].text), SERVE_SCHEMA)


def test_a_grammar_request_at_negative_temperature_follows_the_grammar(client):
    for seed in range(4):
        r = client.completions.create(model="smollm2-135m", prompt="Is it hot?", temperature=-0.001, max_tokens=8,
                                      seed=seed, extra_body={"grammar": 'root ::= ("yes" | "no" | "maybe") "."'})
        assert r.choices[0].text in ("yes.", "no.", "maybe.")
