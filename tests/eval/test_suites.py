import pytest

from addbench.errors import AddbenchError
from addbench.suites import list_suites, load_suite, suite_hash


def test_registered_suites_and_includes():
    names = list_suites()
    assert {"coco5k", "coco10k", "coco30k", "parti-diversity", "hpsv2-bench"} <= set(names)
    assert not any(n.startswith("_") for n in names)
    s = load_suite("coco10k")
    assert s.version == 2 and s.seeds == (0,) and s.resolution == 512  # from _t2i.yaml via _coco2014.yaml
    assert s.prompts.format == "coco_captions" and s.prompts.expected == {"images": 40504, "annotations": 202654}
    assert s.prompts.selection == {"rule": "random_images", "n": 10000, "seed": 2024, "caption": "first"}
    assert [m.name for m in s.metrics] == ["clip_score", "pickscore", "hpsv2", "mps", "fid"]
    assert s.metrics[0].kwargs["convention"] == "x100"
    assert load_suite("coco5k").metrics[1].kwargs["convention"] == "cosine"  # ADD reports raw cosine
    assert load_suite("parti-diversity").seeds == (0, 1, 2, 3)
    assert "include" not in s.resolved and "_base_dir" not in s.resolved["prompts"]


@pytest.mark.parametrize("name", list_suites())
def test_every_shipped_suite_loads(name):
    s = load_suite(name)  # a broken shipped YAML (e.g. an unquoted ": " in a value) fails here, not for a user
    assert s.name == name and s.metrics


def test_hash_is_stable_and_tracks_content(tmp_path):
    a, b = load_suite("coco5k"), load_suite("coco5k")
    assert a.config_sha256 == b.config_sha256 and len(a.config_sha256) == 64
    assert suite_hash(a, "p1") != suite_hash(a, "p2")
    text = open(a.path).read()
    (tmp_path / "coco5k.yaml").write_text(text.replace("convention: cosine", "convention: x100"))
    assert load_suite(tmp_path / "coco5k.yaml").config_sha256 != a.config_sha256


def test_unknown_suite_is_one_line():
    with pytest.raises(AddbenchError) as e:
        load_suite("coco9k")
    assert "unknown suite 'coco9k'" in str(e.value) and "coco10k" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text,match", [
    ("name: x\nversion: [1\n", "not valid YAML line"),
    ("- a\n- b\n", "must hold a mapping"),
    ("version: one\nprompts: {name: p, format: inline, items: [a]}\nmetrics: [m]\n", "'version' must be an integer"),
    ("version: 1\nprompts: {name: p, format: csv}\nmetrics: [m]\n", "prompts.format must be one of"),
    ("version: 1\nprompts: {name: p, format: inline, items: [a]}\nmetrics: []\n", "'metrics' must be a non-empty list"),
    ("version: 1\nprompts: {name: p, format: inline, items: [a]}\nseeds: [0, 0]\nmetrics: [m]\n", "must not repeat"),
    ("version: 1\nprompts: {name: p, format: inline, items: [a]}\nmetrics: [m]\nmetrix: 1\n", "unknown key"),
    ("include: nothere.yaml\n", "includes 'nothere.yaml', which does not exist"),
])
def test_malformed_suite_files(tmp_path, text, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(AddbenchError, match=match) as e:
        load_suite(p)
    assert "\n" not in str(e.value)


def test_include_merges_and_detects_cycles(tmp_path):
    (tmp_path / "_base.yaml").write_text("version: 3\nseeds: [5]\nprompts: {format: inline, items: [x, y]}\nmetrics: [m]\n")
    (tmp_path / "child.yaml").write_text("include: _base.yaml\nprompts: {name: kid}\nseeds: [1, 2]\n")
    s = load_suite(tmp_path / "child.yaml")
    assert s.version == 3 and s.seeds == (1, 2) and s.prompts.items == ("x", "y") and s.prompts.name == "kid"
    (tmp_path / "a.yaml").write_text("include: b.yaml\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\n")
    with pytest.raises(AddbenchError, match="include cycle"):
        load_suite(tmp_path / "a.yaml")


def test_metric_precision_is_part_of_the_suite(tmp_path):
    coco, toy = load_suite("coco10k"), load_suite("toy")
    assert coco.metric_precision == "tf32" and coco.resolved["metric_precision"] == "tf32"  # via _coco2014.yaml
    assert load_suite("coco5k").metric_precision == "tf32" and toy.metric_precision == "fp32"
    strict = coco.with_metric_precision("fp32")
    assert strict.metric_precision == "fp32" and strict.config_sha256 != coco.config_sha256  # own run key
    assert strict.with_metric_precision("tf32").config_sha256 == coco.config_sha256
    assert toy.with_metric_precision("fp32") is toy  # suites without the key keep their hash (old records stand)
    with pytest.raises(AddbenchError, match="use one of fp32, tf32"):
        coco.with_metric_precision("bf16")
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(toy.path).read() + "\nmetric_precision: fp16\n")
    with pytest.raises(AddbenchError, match="metric_precision must be fp32 or tf32"):
        load_suite(bad)
