"""scripts/tools/convert_layouts.py: the packaged layouts are the reference, converted."""
import importlib.resources
import importlib.util
import json
from pathlib import Path

import pytest

from kdsim.nt.profiles import PROFILE_NAMES, get_profile
from tests.nt.helpers import REFERENCE_LAYOUTS, load_reference

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "tools" / "convert_layouts.py"


@pytest.fixture(scope="module")
def converter():
    spec = importlib.util.spec_from_file_location("convert_layouts", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def packaged(target):
    name = get_profile(target).types_resource
    return importlib.resources.files("kdsim.nt.profiles").joinpath(name).read_text("utf-8")


def test_packaged_layouts_are_up_to_date(converter):
    load_reference("win7-x64")                                # skips without ../shared
    pkg = Path(str(importlib.resources.files("kdsim.nt.profiles")))
    assert converter.main([str(REFERENCE_LAYOUTS), "--out", str(pkg), "--check"]) == 0


def test_conversion_is_deterministic_and_compact(converter, target):
    doc = load_reference(target)
    first = converter.dumps(converter.convert(doc))
    assert first == converter.dumps(converter.convert(json.loads(json.dumps(doc))))
    assert first == packaged(target)
    assert "\n" not in first[:-1] and ": " not in first[:200]


def test_packaged_layouts_keep_data_and_drop_provenance(target):
    data = json.loads(packaged(target))
    assert set(data) == {"target", "source", "pointer_size", "types", "enums",
                         "supplementary_types", "notes"}
    assert data["target"] == target
    assert "\n" not in data["source"] and len(data["source"]) < 200
    assert set(data["notes"]) == {"_MI_VAD_TYPE"}
    assert data["notes"]["_MI_VAD_TYPE"]["field"] == "_MMVAD_FLAGS.VadType"
    assert all("kind_inferred" not in t for t in data["types"].values())
    modules = {n: t["module"] for n, t in data["supplementary_types"].items()}
    assert modules == {"LIST_ENTRY64": "nt", "_KDDEBUGGER_DATA64": "wdbgexts",
                       "_DBGKD_DEBUG_DATA_HEADER64": "wdbgexts"}


def test_validation_rejects_a_field_outside_its_type(converter):
    doc = load_reference("win7-x86")
    doc["types"]["_MMPTE"]["size"] = 2
    with pytest.raises(ValueError, match="_MMPTE"):
        converter.convert(doc)


def test_every_target_has_packaged_layouts():
    for target in PROFILE_NAMES:
        assert json.loads(packaged(target))["target"] == target
