"""`hyla serve`: the OpenAI-compatible HTTP server, on loopback, each server on a free
port and killed at the end.

- The `openai` Python client works unchanged: completions, chat, streaming, models.
- Completions' logprobs with echo equal transformers' log_softmax of the same teacher
  (the outside oracle), for prompt and generated tokens.
- Hostile requests (malformed JSON, wrong types, prompts over the context, negative or
  huge max_tokens, unknown routes, a client vanishing mid-stream) get 4xx in OpenAI's
  error shape, free their slot, and the server keeps serving.
- The API key refuses requests without it; SIGTERM drains a stream in flight.
- A short load test (bench/serve_load.py): concurrent streaming clients, no failure.
"""
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time

import openai
import pytest
import torch
import transformers

from conftest import ROOT

TEACHER = ROOT / "assets" / "teacher-tiny"
sys.path.insert(0, str(ROOT / "bench"))
import serve_load  # noqa: E402


class Server:
    def __init__(self, hyla_bin, model, *extra):
        self.proc = subprocess.Popen([hyla_bin, "serve", str(model), "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(m.group(1))
        self.base = f"http://127.0.0.1:{self.port}"

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        c.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        return r.status, text

    def metric(self, name):
        _, text = self.request("GET", "/metrics")
        m = re.search(rf"^hyla_{name} (\S+)$", text, re.M)
        assert m, f"/metrics has no hyla_{name}"
        return float(m.group(1))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def server(hyla_bin):
    s = Server(hyla_bin, TEACHER, "--max-running", "4")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_openai_client_completions_chat_models(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["teacher-tiny"]
    c = client.completions.create(model="teacher-tiny", prompt="Once upon a time", max_tokens=8, temperature=0)
    assert c.choices[0].finish_reason in ("length", "stop") and c.usage.prompt_tokens > 0
    assert c.usage.completion_tokens == len(c.choices[0].logprobs.tokens) if c.choices[0].logprobs else True
    chat = client.chat.completions.create(model="teacher-tiny", max_tokens=6, temperature=0,
                                          messages=[{"role": "user", "content": "Tell me a story."}])
    assert chat.choices[0].message.role == "assistant" and chat.usage.completion_tokens <= 6


def test_streaming_equals_non_streaming(client):
    kw = dict(model="teacher-tiny", prompt="The little dog", max_tokens=12, temperature=0,
              extra_body={"ignore_eos": True})
    whole = client.completions.create(**kw).choices[0].text
    pieces, finish = [], None
    for ev in client.completions.create(stream=True, **kw):
        pieces.append(ev.choices[0].text)
        finish = ev.choices[0].finish_reason or finish
    assert "".join(pieces) == whole and finish == "length"
    chat = client.chat.completions.create(model="teacher-tiny", max_tokens=5, temperature=0, stream=True,
                                          messages=[{"role": "user", "content": "Hi"}])
    deltas = [ev.choices[0].delta.content or "" for ev in chat if ev.choices]
    assert len(deltas) >= 1


def test_stop_strings_and_seed(client):
    kw = dict(model="teacher-tiny", prompt="Once upon a time", max_tokens=30, temperature=0,
              extra_body={"ignore_eos": True})
    text = client.completions.create(**kw).choices[0].text
    stop = text[5:8]
    c = client.completions.create(stop=[stop], **kw).choices[0]
    assert c.text == text[:text.index(stop)] and c.finish_reason == "stop"
    a, b = (client.completions.create(model="teacher-tiny", prompt="Hello", max_tokens=10, temperature=1.0,
                                      seed=5).choices[0].text for _ in range(2))
    assert a == b


def test_logprobs_echo_match_transformers(client):
    hf = transformers.AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32).eval()
    ids = [1, 450, 2001, 77, 3021, 15, 999, 4000, 12, 8000, 5]
    c = client.completions.create(model="teacher-tiny", prompt=ids, max_tokens=3, temperature=0, echo=True,
                                  logprobs=2, extra_body={"ignore_eos": True}).choices[0]
    lp = c.logprobs
    assert len(lp.token_logprobs) == len(ids) + 3 and lp.token_logprobs[0] is None
    gen = [ids[-1]]  # recover the generated ids by greedy argmax under transformers
    with torch.no_grad():
        full = list(ids)
        for _ in range(3):
            nxt = hf(torch.tensor([full])).logits[0, -1].argmax().item()
            full.append(nxt)
        logits = hf(torch.tensor([full])).logits[0].double()
    want = torch.log_softmax(logits, -1)[torch.arange(len(full) - 1), torch.tensor(full[1:])]
    got = torch.tensor(lp.token_logprobs[1:], dtype=torch.float64)
    assert torch.allclose(got, want, atol=2e-4), (got - want).abs().max()
    for top, tok_lp in zip(lp.top_logprobs[1:], lp.token_logprobs[1:]):
        assert len(top) >= 1 and max(top.values()) >= tok_lp - 1e-6
    # Scoring only (lm-eval's loglikelihood form): max_tokens 0 returns the prompt's logprobs.
    s = client.completions.create(model="teacher-tiny", prompt=ids, max_tokens=0, echo=True, logprobs=0).choices[0]
    assert torch.allclose(torch.tensor(s.logprobs.token_logprobs[1:], dtype=torch.float64),
                          want[:len(ids) - 1], atol=2e-4)
    del gen


def is_openai_error(status, text, want_status):
    body = json.loads(text)
    return status == want_status and set(body["error"]) >= {"message", "type", "param", "code"}


def test_hostile_requests(server):
    bad = [
        ("{not json", 400),
        ("[1, 2]", 400),
        (json.dumps({"prompt": 5}), 400),
        (json.dumps({"prompt": "hi", "max_tokens": "10"}), 400),
        (json.dumps({"prompt": "hi", "temperature": "hot"}), 400),
        (json.dumps({"prompt": "hi", "max_tokens": -1}), 400),
        (json.dumps({"prompt": "hi", "max_tokens": 10 ** 15}), 400),
        (json.dumps({"prompt": "hi", "max_tokens": 2 ** 70}), 400),
        (json.dumps({"prompt": [1] * 1100, "max_tokens": 1}), 400),
        (json.dumps({"prompt": [1, 99999], "max_tokens": 1}), 400),
        (json.dumps({"prompt": "hi", "stream": "yes"}), 400),
        (json.dumps({"prompt": "hi", "logprobs": 50}), 400),
    ]
    for body, status in bad:
        st, text = server.request("POST", "/v1/completions", body)
        assert is_openai_error(st, text, status), (body[:60], st, text)
    st, text = server.request("POST", "/v1/chat/completions", json.dumps({"messages": "hi"}))
    assert is_openai_error(st, text, 400)
    st, text = server.request("GET", "/v1/nothing")
    assert is_openai_error(st, text, 404)
    st, text = server.request("GET", "/health")
    assert st == 200 and json.loads(text)["status"] == "ok"


def test_disconnect_mid_stream_frees_the_slot(server):
    before = server.metric("client_disconnects_total")
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    body = json.dumps({"prompt": "Once", "max_tokens": 900, "stream": True, "ignore_eos": True})
    s.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
    assert b"data:" in s.recv(4096) + s.recv(4096)
    s.close()
    deadline = time.time() + 20
    while time.time() < deadline and (server.metric("running_sequences") > 0
                                      or server.metric("client_disconnects_total") == before):
        time.sleep(0.1)
    assert server.metric("running_sequences") == 0 and server.metric("state_slots_used") == 0
    assert server.metric("client_disconnects_total") == before + 1
    st, _ = server.request("POST", "/v1/completions", {"prompt": "Still here", "max_tokens": 2})
    assert st == 200


def test_metrics(server):
    _, text = server.request("GET", "/metrics")
    for name in ("queue_depth", "running_sequences", "tokens_per_second", "kv_blocks_used", "state_slots_used",
                 "prefix_cache_hit_rate", "hybrid_attention_ratio"):
        assert re.search(rf"^# TYPE hyla_{name} (gauge|counter)$", text, re.M), name
    assert server.metric("hybrid_attention_ratio") == 1.0


def test_api_key(hyla_bin):
    s = Server(hyla_bin, TEACHER, "--api-key", "sekrit")
    try:
        st, text = s.request("GET", "/v1/models")
        assert is_openai_error(st, text, 401)
        st, _ = s.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
        assert st == 401
        ok = openai.OpenAI(base_url=s.base + "/v1", api_key="sekrit", max_retries=0)
        assert ok.completions.create(model="m", prompt="Hi", max_tokens=2).choices
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=s.base + "/v1", api_key="nope", max_retries=0).models.list()
    finally:
        s.stop()


def test_sigterm_drains_in_flight(hyla_bin):
    s = Server(hyla_bin, TEACHER)
    try:
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        c.request("POST", "/v1/completions", body=json.dumps(
            {"prompt": "Once", "max_tokens": 60, "stream": True, "ignore_eos": True}),
            headers={"Content-Type": "application/json"})
        r = c.getresponse()
        first = r.readline()
        assert first.startswith(b"data:")
        s.proc.send_signal(signal.SIGTERM)
        rest = r.read().decode()
        c.close()
        assert rest.rstrip().endswith("data: [DONE]") and '"finish_reason":"length"' in rest
        assert s.proc.wait(30) == 0
    finally:
        s.stop()


def test_load_short(server):
    res = serve_load.run(server.base, clients=6, requests=18, max_tokens=8, seed=1)
    assert res["failed"] == 0 and res["completed"] == 18
    assert res["ttft_p50_s"] > 0 and res["tokens_per_s"] > 0


def test_prefix_cache_memory_is_bounded(hyla_bin):
    # teacher-tiny's K/V: 5 layers x 2 x 2 heads x 32 x 4 bytes = 2560 bytes a token, so a
    # 48 KiB budget holds about 19 tokens: one 16-token prompt entry at a time.
    budget = 48 * 1024
    s = Server(hyla_bin, TEACHER, "--prefix-cache-mb", str(budget / 2 ** 20))
    try:
        prompts = [[100 * i + j for j in range(16)] for i in range(1, 6)]  # no shared token
        for p in prompts:
            st, _ = s.request("POST", "/v1/completions", {"prompt": p, "max_tokens": 1})
            assert st == 200
            assert s.metric("prefix_cache_bytes") <= budget
        assert s.metric("prefix_cache_evictions_total") >= 4
        hits = s.metric("prefix_cache_hits_total")
        s.request("POST", "/v1/completions", {"prompt": prompts[0], "max_tokens": 1})  # evicted: a miss
        assert s.metric("prefix_cache_hits_total") == hits
        s.request("POST", "/v1/completions", {"prompt": prompts[0] + [7, 8], "max_tokens": 1})  # just cached: a hit
        assert s.metric("prefix_cache_hits_total") == hits + 1
    finally:
        s.stop()


def test_queue_full_and_oversized_body(hyla_bin):
    s = Server(hyla_bin, TEACHER, "--max-running", "1", "--max-waiting", "1")
    try:
        conns = []
        for _ in range(2):  # one running, one waiting (long enough to outlast the checks)
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
            c.request("POST", "/v1/completions", json.dumps({"prompt": "Once", "max_tokens": 1000, "stream": True,
                                                             "ignore_eos": True}),
                      {"Content-Type": "application/json"})
            conns.append(c)
            if len(conns) == 1:
                assert conns[0].getresponse().readline().startswith(b"data:")
        deadline = time.time() + 10
        while s.metric("queue_depth") < 1 and time.time() < deadline:
            time.sleep(0.05)
        st, text = s.request("POST", "/v1/completions", {"prompt": "Hi", "max_tokens": 1})
        assert is_openai_error(st, text, 429)
        for c in conns:
            c.close()
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as raw:  # body over 32 MiB
            raw.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n" % (33 << 20))
            assert raw.recv(4096).startswith(b"HTTP/1.1 413")
    finally:
        s.stop()
