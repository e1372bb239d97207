"""Typed configs (issue 19): every distiller declares its keys in a frozen dataclass (``config_class``, engine keys
included); resolve_config checks each value against its type and ``cfg.typed`` / ``plugin.conf`` read it typed."""
import dataclasses
from dataclasses import dataclass
from typing import Literal

import pytest

from addbench.errors import AddbenchError
from addbench.registry import DISTILLERS
from addbench.train.config import ENGINE_DEFAULTS
from addbench.train.engine_config import EngineConfig
from addbench.train.entry import resolve_config
from addbench.train.plugin import Distiller
from addbench.train.schema import build, defaults_of, field_types

NAMES = ["add", "dmd", "dmd2", "dmdx.adp", "dmdx.adm"]


@dataclass(frozen=True, kw_only=True)
class TinyConfig(EngineConfig):
    lambda_x: float
    steps: int = 1
    mode: Literal["a", "b"] = "a"
    taps: str | list[str] = "base"


class Tiny(Distiller):
    name = "tiny"
    config_class = TinyConfig
    presets = {"ok": {"lambda_x": 1, "mode": "b"},       # an int where a float is declared: converted
               "extra": {"lambda_x": 1.0, "lamda_y": 2.0},  # a key TinyConfig does not declare
               "badtype": {"lambda_x": "high"},
               "missing": {"steps": 2}}


def test_engine_defaults_are_the_engine_dataclass():
    assert ENGINE_DEFAULTS == defaults_of(EngineConfig) and list(ENGINE_DEFAULTS) == list(field_types(EngineConfig))


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_resolves_and_its_typed_values_equal_the_dict(name):
    cls = DISTILLERS.get(name)
    assert cls.config_class is not None and issubclass(cls.config_class, EngineConfig)
    for base in cls.presets:
        cfg = resolve_config(name, base)
        conf = cfg.typed
        assert type(conf) is cls.config_class
        for f in dataclasses.fields(conf):
            if f.name in cfg:
                assert getattr(conf, f.name) == cfg[f.name], (base, f.name)
        assert cls(cfg).conf is conf  # the plug-in reads the object resolve_config attached


@pytest.mark.parametrize("item, key", [("fake_per_g=abc", "fake_per_g"), ("lambda_dm=[1]", "lambda_dm"),
                                       ("gen_steps=2.5", "gen_steps"), ("backward_simulation=maybe",
                                                                        "backward_simulation"),
                                       ("state_layout=zip", "state_layout")])
def test_a_wrong_typed_override_fails_in_one_line_naming_the_key(item, key):
    with pytest.raises(AddbenchError) as err:
        resolve_config("dmd2", "toy", [item])
    msg = str(err.value)
    assert msg.startswith(key + "=") and "\n" not in msg and "must be" in msg and "--set" in msg


def test_ints_become_floats_and_overrides_read_the_declared_type():
    cfg = resolve_config(Tiny, "ok")
    assert cfg["lambda_x"] == 1.0 and isinstance(cfg["lambda_x"], float) and isinstance(cfg.typed.lambda_x, float)
    assert cfg.typed.mode == "b" and cfg.typed.steps == 1 and "steps" not in cfg  # field default, dict untouched
    cfg = resolve_config(Tiny, "ok", ["steps=3", "taps=a,b", "lambda_x=2"])  # declared: no "+" needed
    assert cfg.typed.steps == 3 and cfg["taps"] == ["a", "b"] and cfg.typed.lambda_x == 2.0
    assert resolve_config(Tiny, "ok", ["taps=mid"]).typed.taps == "mid"
    with pytest.raises(AddbenchError, match="mode=c: must be one of a, b"):
        resolve_config(Tiny, "ok", ["mode=c"])


def test_preset_keys_are_declared_and_typed():
    with pytest.raises(AddbenchError, match="preset extra sets 'lamda_y', which TinyConfig"):
        resolve_config(Tiny, "extra")
    assert resolve_config(Tiny, "ok", ["+lamda_y=2"])["lamda_y"] == 2  # an added key stays untyped, in the dict
    with pytest.raises(AddbenchError, match=r"lambda_x=high: must be a number \(declared float in TinyConfig, "
                                            r"from preset badtype\)"):
        resolve_config(Tiny, "badtype")
    with pytest.raises(AddbenchError, match="lacks lambda_x, required by TinyConfig"):
        resolve_config(Tiny, "missing")


def test_conf_follows_a_replaced_cfg_and_builds_from_a_plain_dict():
    cfg = resolve_config("dmdx.adm", "cogvideox", ["student_cfg=true"])
    plugin = DISTILLERS.get("dmdx.adm")(cfg)
    assert plugin.conf.student_cfg is True and plugin.conf.frames == 49
    plugin.cfg = {**cfg, "student_cfg": False}
    assert plugin.conf.student_cfg is False
    assert build(TinyConfig, {"lambda_x": 3}).lambda_x == 3.0
