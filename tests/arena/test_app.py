import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from addbench.arena.app import create_app
from addbench.arena.runs import load_runs
from addbench.arena.store import Store
from addbench.arena.study import Study

TOKEN = "s3cret-token"


@pytest.fixture
def study(run_dirs, tmp_path):
    return Study(load_runs(run_dirs), Store(tmp_path / "study.sqlite"), seed=3, pairs=8, controls_every=3)


@pytest.fixture
def client(study):
    return TestClient(create_app(study), base_url="http://127.0.0.1")


def answer(client, rater, position, quality="left", alignment="tie", **kw):
    return client.post("/api/vote", json={"rater": rater, "position": position, "quality": quality,
                                          "alignment": alignment, **kw})


def test_a_rater_walks_the_schedule_and_a_new_server_resumes_it(study, client, run_dirs, tmp_path):
    n = client.get("/api/next", params={"rater": "r1"}).json()
    assert n == {"rater": "r1", "position": 0, "total": 12, "done": False, "prompt": study.prompt(study.item("r1", 0))}
    for position in range(4):
        assert answer(client, "r1", position, elapsed_ms=1200).json()["next"] == position + 1
    assert len(study.store.votes()) == 4
    again = Study(load_runs(run_dirs), Store(tmp_path / "study.sqlite"), seed=3, pairs=8, controls_every=3)
    client2 = TestClient(create_app(again), base_url="http://127.0.0.1")
    assert client2.get("/api/next", params={"rater": "r1"}).json()["position"] == 4
    assert again.schedule("r1") == study.schedule("r1")
    for position in range(4, 12):
        assert answer(client2, "r1", position).status_code == 200
    assert client2.get("/api/next", params={"rater": "r1"}).json()["done"] is True
    rows = again.store.votes()
    assert [r["position"] for r in rows] == list(range(12))
    item = again.item("r1", 5)
    assert rows[5]["pair_id"] == item.pair_id and rows[5]["left_run"] == item.left.run
    assert rows[5]["left_model"] == again.runs[item.left.run].model and rows[5]["elapsed_ms"] is None
    assert rows[0]["elapsed_ms"] == 1200


def test_images_are_served_by_schedule_item(study, client):
    item = next(it for it in study.schedule("r1") if it.control is None)
    for side in ("left", "right"):
        r = client.get("/api/image", params={"rater": "r1", "position": item.position, "side": side})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        s = item.side(side)
        assert r.content == study.runs[s.run].image_path(s.key).read_bytes()
    check = next(it for it in study.schedule("r1") if it.control in ("blur", "noise"))
    bad = client.get("/api/image", params={"rater": "r1", "position": check.position, "side": check.control_side})
    s = check.side(check.control_side)
    assert Image.open(io.BytesIO(bad.content)).size == Image.open(study.runs[s.run].image_path(s.key)).size
    assert bad.content != study.runs[s.run].image_path(s.key).read_bytes()


@pytest.mark.parametrize("path", [
    "/static/../../record.json", "/static/%2e%2e/%2e%2e/record.json", "/static/..%2f..%2frecord.json",
    "/runs/good/samples/00000_0.png", "/good/samples/00000_0.png", "/samples/00000_0.png", "/record.json",
    "/static/%2e%2e/app.py", "/static/../app.py", "/etc/passwd", "/static//etc/passwd",
    "/api/image?rater=r1&position=0&side=../../record.json", "/api/image?rater=../r1&position=0&side=left",
    "/api/image?rater=r1&position=0&side=left&path=/etc/passwd&image=samples/00000_0.png",
])
def test_no_request_reaches_a_file_outside_the_app(client, path):
    r = client.get(path)
    assert r.status_code in (400, 404, 422) or r.content[:8] == b"\x89PNG\r\n\x1a\n"  # the last: the item's image
    assert b"prompt_index" not in r.content and b"root:" not in r.content and b"import" not in r.content
    if r.status_code >= 400:
        assert "error" in r.json()


@pytest.mark.parametrize("params,status", [
    ({"rater": "r1", "position": -1, "side": "left"}, 422), ({"rater": "r1", "position": 999, "side": "left"}, 404),
    ({"rater": "r1", "position": "x", "side": "left"}, 422), ({"rater": "r 1", "position": 0, "side": "left"}, 422),
    ({"rater": "r1", "position": 0, "side": "middle"}, 422), ({"rater": "r1", "position": 0}, 422),
])
def test_bad_image_requests_get_4xx_json(client, params, status):
    r = client.get("/api/image", params=params)
    assert r.status_code == status and "error" in r.json()


@pytest.mark.parametrize("body", [
    {"rater": "r1", "position": 0, "quality": "up", "alignment": "tie"},
    {"rater": "r1", "position": 0, "quality": "left"},
    {"rater": "r1", "position": 0, "quality": "left", "alignment": "tie", "winner": "a"},
    {"rater": "<script>", "position": 0, "quality": "left", "alignment": "tie"},
    {"rater": "r1", "position": -3, "quality": "left", "alignment": "tie"},
    {"rater": "r1", "position": 0, "quality": "left", "alignment": "tie", "elapsed_ms": -5},
])
def test_bad_votes_get_422_and_store_nothing(client, study, body):
    r = client.post("/api/vote", json=body)
    assert r.status_code == 422 and "error" in r.json()
    assert client.post("/api/vote", content=b"not json", headers={"content-type": "application/json"}).status_code == 422
    assert study.store.votes() == []


def test_a_vote_for_another_position_is_a_409_naming_the_next(client, study):
    assert answer(client, "r1", 0).status_code == 200
    for position in (0, 5):
        r = answer(client, "r1", position)
        assert r.status_code == 409 and r.json()["error"]["next"] == 1
    assert answer(client, "r1", 99).status_code == 404
    assert len(study.store.votes()) == 1


def test_the_token_is_required_on_every_request(study):
    client = TestClient(create_app(study, token=TOKEN), base_url="http://127.0.0.1")
    for path in ("/", "/results", "/static/arena.js", "/api/next?rater=r1", "/api/results",
                 "/api/image?rater=r1&position=0&side=left"):
        client.cookies.clear()  # a valid token sets the cookie
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"X-Arena-Token": "wrong-token"}).status_code == 401
        assert client.get(path, headers={"X-Arena-Token": TOKEN}).status_code == 200
    client.cookies.clear()
    assert client.post("/api/vote", json={"rater": "r1", "position": 0, "quality": "left",
                                          "alignment": "left"}).status_code == 401
    assert study.store.votes() == []
    page = client.get("/", params={"token": TOKEN})  # the link a rater gets
    assert page.status_code == 200 and "addbench_arena_token" in page.headers["set-cookie"]
    assert "samesite=strict" in page.headers["set-cookie"].lower()
    assert client.get("/static/arena.js").status_code == 200  # the page's own requests: by the cookie
    client.cookies.clear()
    assert client.get("/static/arena.js").status_code == 401


def test_other_host_headers_are_refused(client):
    assert client.get("/api/next", params={"rater": "r1"}, headers={"host": "evil.example:8765"}).status_code == 400
    assert client.get("/api/next", params={"rater": "r1"}, headers={"host": "localhost:8765"}).status_code == 200


def test_pages_and_security_headers(client):
    page = client.get("/")
    assert page.status_code == 200 and "arena.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/results").status_code == 200
    assert client.get("/api/next", params={"rater": "r1"}).headers["cache-control"] == "no-store"
    assert client.get("/docs").status_code == 404 and client.get("/openapi.json").status_code == 404


def test_results_count_real_votes_of_raters_in_good_standing(client, study):
    for rater, careful in (("careful", True), ("sloppy", False)):
        for it in study.schedule(rater):
            good = "right" if it.control_side == "left" else "left"
            q = a = (good if careful else it.control_side) if it.control else "left"
            assert answer(client, rater, it.position, q, a).status_code == 200
    res = client.get("/api/results", params={"draws": 50}).json()
    assert res["excluded_raters"] == ["sloppy"] and res["raters"]["careful"]["failed"] == 0
    assert res["games"] == 2 * 8  # careful's 8 real pairs, two questions
    assert set(res["questions"]) == {"quality", "alignment"} and set(res["mean"]) == {"good", "mid", "bad"}
    elo = res["questions"]["quality"]["elo"]
    assert all(e["ci95"][0] <= e["rating"] <= e["ci95"][1] for e in elo.values())
    cells = res["questions"]["quality"]["winrate"]
    assert {(c["model"], c["opponent"]) for c in cells} <= {(m, o) for m in elo for o in elo if m != o}
    assert client.get("/api/results", params={"draws": 1}).status_code == 422
