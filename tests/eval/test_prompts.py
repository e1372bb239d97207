import json

import pytest

from addbench.errors import AddbenchError
from addbench.prompts import build_prompt_set, cache_dir, file_sha256, load_prompts
from addbench.suites import load_suite

# image_id -> captions as (annotation id, caption); ids deliberately unsorted in the file
COCO = {7: [(70, "a cat\non a mat "), (12, "A  cat sitting.")], 3: [(31, "a dog"), (30, "the first dog caption")],
        9: [(90, "a bird")], 1: [(15, "a car"), (16, "a red car")], 5: [(50, "a boat")], 2: [(20, "a tree")]}


def _coco_file(tmp_path, drop=None):
    anns = [{"image_id": i, "id": a, "caption": c} for i, caps in COCO.items() for a, c in caps if i != drop]
    data = {"info": {}, "images": [{"id": i} for i in COCO], "annotations": anns}
    p = tmp_path / "captions_val.json"
    p.write_text(json.dumps(data))
    return p


def _suite(tmp_path, prompts: str, name="mini"):
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"version: 1\nprompts:\n{prompts}\nmetrics: [fake_brightness]\n")
    return load_suite(p)


COCO_SPEC = """  name: mini-coco
  format: coco_captions
  source: captions_val.json
  source_url: https://example.org/annotations.zip
  expected: {{images: 6, annotations: 9}}
  selection: {sel}
"""


def test_coco_first_images_rule(tmp_path):
    s = _suite(tmp_path, COCO_SPEC.format(sel="{rule: first_images, n: 4}"))
    ps = build_prompt_set(s.prompts, _coco_file(tmp_path))
    assert [r["source_id"] for r in ps.records] == [1, 2, 3, 5]
    assert ps.prompts == ["a car", "a tree", "the first dog caption", "a boat"]  # smallest annotation id wins
    assert (cache_dir() / "mini-coco.jsonl").exists()
    meta = json.loads((cache_dir() / "mini-coco.meta.json").read_text())
    assert meta["sha256"] == ps.sha256 and meta["source_sha256"] == file_sha256(_coco_file(tmp_path))
    loaded = load_prompts(s)
    assert loaded.sha256 == ps.sha256 and loaded.prompts == ps.prompts


def test_coco_random_rule_is_seeded_and_normalises(tmp_path):
    s = _suite(tmp_path, COCO_SPEC.format(sel="{rule: random_images, n: 5, seed: 1, caption: first}"))
    src = _coco_file(tmp_path)
    a, b = build_prompt_set(s.prompts, src), build_prompt_set(s.prompts, src)
    assert a == b and len(a) == 5
    ids = [r["source_id"] for r in a.records]
    assert ids == sorted(ids) and len(set(ids)) == 5
    if 7 in ids:
        assert "A cat sitting." in a.prompts  # whitespace collapsed
    s2 = _suite(tmp_path, COCO_SPEC.format(sel="{rule: random_images, n: 5, seed: 2, caption: first}"), "mini2")
    assert build_prompt_set(s2.prompts, src).sha256 != a.sha256 or ids == sorted(COCO)[:5]


def test_wrong_or_truncated_coco_file_is_refused(tmp_path):
    s = _suite(tmp_path, COCO_SPEC.format(sel="{rule: first_images, n: 4}"))
    with pytest.raises(AddbenchError, match="8 annotations, expected 9.*https://example.org/annotations.zip"):
        build_prompt_set(s.prompts, _coco_file(tmp_path, drop=9))
    trunc = tmp_path / "trunc.json"
    trunc.write_text(_coco_file(tmp_path).read_text()[:-40])
    with pytest.raises(AddbenchError, match="maybe truncated"):
        build_prompt_set(s.prompts, trunc)
    (tmp_path / "other.json").write_text(json.dumps({"images": []}))
    with pytest.raises(AddbenchError, match="'annotations' list"):
        build_prompt_set(s.prompts, tmp_path / "other.json")
    with pytest.raises(AddbenchError, match="does not exist; download captions_val.json"):
        build_prompt_set(s.prompts, tmp_path / "nope.json")


def test_source_sha256_is_enforced_when_set(tmp_path):
    src = _coco_file(tmp_path)
    good = file_sha256(src)
    spec = COCO_SPEC.format(sel="{rule: first_images, n: 4}")
    s = _suite(tmp_path, spec + f"  source_sha256: '{'0' * 64}'\n")
    with pytest.raises(AddbenchError, match="expected 0000"):
        build_prompt_set(s.prompts, src)
    s = _suite(tmp_path, spec + f"  source_sha256: '{good}'\n")
    assert len(build_prompt_set(s.prompts, src)) == 4


def test_unbuilt_prompt_set_says_how_to_build(tmp_path):
    s = _suite(tmp_path, COCO_SPEC.format(sel="{rule: first_images, n: 4}"))
    with pytest.raises(AddbenchError, match=r"not built; download .* `addbench prompts build mini --from captions_val.json`"):
        load_prompts(s)


PARTI = "Prompt\tCategory\tChallenge\tNote\n" \
        "bond\tAbstract\tBasic\t\n" \
        "A photo of a   cat\tAnimals\tBasic\tnote\n" \
        "a \"quoted\" thing\tArts\tImagination\t\n"


def test_parti_tsv(tmp_path):
    (tmp_path / "PartiPrompts.tsv").write_text(PARTI)
    s = _suite(tmp_path, "  name: mini-parti\n  format: parti_tsv\n  expected: {rows: 3}\n  selection: {rule: all}\n")
    ps = build_prompt_set(s.prompts, tmp_path / "PartiPrompts.tsv")
    assert ps.prompts == ["bond", "A photo of a cat", 'a "quoted" thing']
    assert [r["category"] for r in ps.records] == ["Abstract", "Animals", "Arts"]
    (tmp_path / "bad.tsv").write_text(PARTI.replace("Category", "Kategorie"))
    with pytest.raises(AddbenchError, match="expected TSV columns Prompt, Category, Challenge, Note"):
        build_prompt_set(s.prompts, tmp_path / "bad.tsv")
    (tmp_path / "short.tsv").write_text(PARTI.rsplit("\n", 2)[0] + "\n")
    with pytest.raises(AddbenchError, match="2 prompts, expected 3"):
        build_prompt_set(s.prompts, tmp_path / "short.tsv")


# PartiPrompts rows with double quotes, as the official file has them: no csv quoting anywhere (row 1560 of the
# official file opens with a quoted word; a csv reader drops those quotes and, for an unmatched opening quote,
# swallows the following lines into one field)
PARTI_QUOTES = [
    ('"G I G G L E" painted in thick colorful lettering as graffiti on a faded red brick wall with a splotch of '
     'exploding white paint.', "Illustrations", "Writing & Symbols", ""),
    ('A green sign that says "Very Deep Learning" and is at the edge of the Grand Canyon.', "World Knowledge",
     "Writing & Symbols", ""),
    ('a 12" vinyl record on a turntable', "Artifacts", "Basic", 'mid-text quote "'),
    ('"an unmatched opening quote on a wall', "Illustrations", "Writing & Symbols", ""),
    ("Dogs playing poker", "Animals", "Imagination", 'Description of "Dogs Playing Poker"'),
]


def test_parti_tsv_keeps_quotes_exactly(tmp_path):
    src = tmp_path / "PartiPrompts.tsv"
    src.write_bytes(("\t".join(("Prompt", "Category", "Challenge", "Note")) + "\n" +
                     "".join("\t".join(r) + "\n" for r in PARTI_QUOTES)).encode())
    s = _suite(tmp_path, "  name: quoted-parti\n  format: parti_tsv\n  expected: {rows: 5}\n  selection: {rule: all}\n")
    ps = build_prompt_set(s.prompts, src)
    file_rows = [line.split("\t") for line in src.read_text(encoding="utf-8").splitlines()[1:]]
    assert ps.prompts == [r[0] for r in file_rows] == [r[0] for r in PARTI_QUOTES]  # byte for byte
    assert [r["category"] for r in ps.records] == [r[1] for r in PARTI_QUOTES]
    assert [r["source_id"] for r in ps.records] == list(range(5))
    assert load_prompts(s).prompts == ps.prompts  # the cached JSONL round-trips them
    # a cache built by the old csv reader (quotes dropped) no longer matches a suite that pins the right set
    pinned = _suite(tmp_path, "  name: quoted-parti\n  format: parti_tsv\n  expected: {rows: 5}\n"
                              f"  selection: {{rule: all}}\n  sha256: '{ps.sha256}'\n", "pinned")
    cached = cache_dir() / "quoted-parti.jsonl"
    cached.write_text(cached.read_text().replace('"\\"G I G G L E\\" painted', '"G I G G L E painted'))
    with pytest.raises(AddbenchError, match="rebuild it with `addbench prompts build pinned --from FILE`"):
        load_prompts(pinned)
    assert build_prompt_set(pinned.prompts, src).sha256 == ps.sha256
    # CRLF line ends read the same; a line with more fields than the header is refused with its number
    crlf = tmp_path / "crlf.tsv"
    crlf.write_bytes(src.read_bytes().replace(b"\n", b"\r\n"))
    assert build_prompt_set(s.prompts, crlf).sha256 == ps.sha256
    extra = tmp_path / "extra.tsv"
    extra.write_text(src.read_text().replace("Dogs playing poker\t", "Dogs playing\tpoker\t"))
    with pytest.raises(AddbenchError, match="line 6 has 5 tab-separated fields, the header 4"):
        build_prompt_set(s.prompts, extra)


def test_parti_diversity_suite_pins_the_official_file():
    spec = load_suite("parti-diversity")
    assert spec.version == 2  # v2: quotes kept (v1 built the set with a csv reader)
    assert spec.prompts.source_sha256 == "fab29e41bb512a169b56acab4cf2a41dcb675e285df2efcde6640c7dd3c440eb"
    assert spec.prompts.sha256 == "0ab2449d634655e8dc78cbaa845592d79f39d5e9ba37766d2522294c62e721fc"


def test_hpdv2_benchmark_folder(tmp_path):
    bench = tmp_path / "benchmark"
    bench.mkdir()
    for style in ("photo", "anime", "paintings", "concept-art"):
        (bench / f"{style}.json").write_text(json.dumps([f"{style} one", f"{style} two"]))
    s = _suite(tmp_path, "  name: mini-hpd\n  format: hpdv2_json\n  expected: {styles: {anime: 2, photo: 2}}\n")
    ps = build_prompt_set(s.prompts, bench)
    assert [r["category"] for r in ps.records][::2] == ["anime", "concept-art", "paintings", "photo"]
    assert ps.prompts[:2] == ["anime one", "anime two"]
    (bench / "photo.json").unlink()
    with pytest.raises(AddbenchError, match="missing photo.json"):
        build_prompt_set(s.prompts, bench)


def test_inline_and_text_sets_need_no_build(tmp_path):
    (tmp_path / "list.txt").write_text("one\n\ntwo  words\n")
    s = _suite(tmp_path, "  name: t\n  format: text\n  path: list.txt\n")
    assert load_prompts(s).prompts == ["one", "two words"]
    with pytest.raises(AddbenchError, match="nothing to build"):
        build_prompt_set(s.prompts, tmp_path / "list.txt")
