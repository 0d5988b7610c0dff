"""The 18 exit-entry halls of Beijing as a ready city configuration (config/beijing-exit-entry/, issue 18), and
``extends``, which lets the halls write what they share once (docs/configuration.md, "Shared parts")."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
from queuehall.broker.config import ConfigError, load_config, read_toml

CITY = Path(__file__).resolve().parent.parent / "config" / "beijing-exit-entry"

# The seed (北京出入境办事大厅, "18个分县局出入境接待大厅"): id -> (name in the seed, address, Monday-Saturday hours).
SEED: dict[str, tuple[str, str, tuple[str, str]]] = {
    "dongcheng": ("东城分局", "东城区金宝街52号", ("09:00-11:30", "13:30-16:30")),
    "xicheng": ("西城分局", "西城区二龙路39号", ("08:30-11:30", "13:30-17:00")),
    "chaoyang": ("朝阳分局", "朝阳区霄云路霄云里1号", ("08:30-11:30", "13:00-17:00")),
    "haidian": ("海淀分局", "海淀区阜成路67号", ("08:30-11:30", "13:00-17:00")),
    "chongwen": ("崇文分局", "崇文区幸福大街34号", ("08:30-11:30", "13:00-17:00")),
    "xuanwu": ("宣武分局", "宣武区梁家园胡同1号", ("08:30-11:30", "14:00-17:30")),
    "fengtai": ("丰台分局", "丰台区科技园区外环西路16号", ("08:30-11:30", "13:30-17:00")),
    "tongzhou": ("通州分局", "通州区新华北街35号", ("08:30-11:30", "13:30-17:30")),
    "shunyi": ("顺义分局", "顺义区顺平西路8号", ("08:30-11:30", "13:30-17:30")),
    "pinggu": ("平谷分局", "平谷区府前街21号", ("08:30-11:30", "14:00-17:30")),
    "daxing": ("大兴分局", "大兴区黄村西大街35号", ("08:30-11:30", "14:00-17:30")),
    "shijingshan": ("石景山分局", "石景山区八角西街16号", ("08:30-11:30", "13:30-16:30")),
    "mentougou": ("门头沟分局", "门头沟新桥大街45号", ("08:30-11:30", "14:00-17:30")),
    "fangshan": ("房山分局", "房山区良乡政通路16号", ("08:30-11:30", "14:00-17:30")),
    "huairou": ("怀柔分局", "北京怀柔区湖光小区13号", ("08:30-11:30", "14:00-17:30")),
    "miyun": ("密云县局", "密云县西大桥路12号", ("08:30-11:30", "14:00-17:30")),
    "changping": ("昌平分局", "昌平区南环东路与亢山路十字路口东南角处", ("08:30-11:30", "13:30-17:30")),
    "yanqing": ("延庆县局", "延庆县延庆镇湖南路18号", ("08:30-11:30", "14:00-17:30")),
}


def periods(spec: tuple[str, ...]) -> list[tuple[time, time]]:
    out = []
    for p in spec:
        a, b = p.split("-")
        out.append((time.fromisoformat(a), time.fromisoformat(b)))
    return out


def test_every_one_of_the_18_halls_loads_with_its_name_address_and_hours_from_the_seed() -> None:
    files = sorted(p.stem for p in CITY.glob("*.toml") if p.stem != "shared")
    assert files == sorted(SEED) and len(files) == 18
    for hall_id, (name, address, hours) in SEED.items():
        cfg = load_config(CITY / f"{hall_id}.toml")
        assert (cfg.hall_id, cfg.hall_id_given) == (hall_id, True)
        assert name in cfg.name.zh and cfg.name.en and address in cfg.address.zh and cfg.address.en
        for day in range(6):  # 周一至周六
            assert [(p.start, p.end) for p in cfg.hours.weekly[day]] == periods(hours), (hall_id, day)
        assert cfg.hours.weekly[6] == () and cfg.hours.chinese_calendar  # 法定节假日除外
        assert [(p.start, p.end) for p in cfg.hours.makeup_hours] == periods(hours)


@pytest.mark.parametrize(("hall_id", "morning", "afternoon"), [
    ("dongcheng", (time(9), time(11, 30)), (time(13, 30), time(16, 30))),
    ("haidian", (time(8, 30), time(11, 30)), (time(13), time(17))),
    ("xuanwu", (time(8, 30), time(11, 30)), (time(14), time(17, 30))),
])
def test_the_hours_the_issue_quotes(hall_id: str, morning: tuple[time, time], afternoon: tuple[time, time]) -> None:
    cfg = load_config(CITY / f"{hall_id}.toml")
    assert [(p.start, p.end) for p in cfg.hours.weekly[0]] == [morning, afternoon]


def test_the_shared_parts_are_written_once_and_every_hall_has_them() -> None:
    configs = [load_config(p) for p in sorted(CITY.glob("*.toml")) if p.stem != "shared"]
    first = configs[0]
    assert [s.code for s in first.services] == ["passport", "hk_macao", "document_pickup", "enquiry"]
    for cfg in configs:
        assert (cfg.services, cfg.counters, cfg.clerks, cfg.departments) == (
            first.services, first.counters, first.clerks, first.departments)
        assert cfg.help_counter == 6 and cfg.retention_days >= 183
    for path in CITY.glob("*.toml"):
        if path.stem == "shared":
            continue
        text = path.read_text(encoding="utf-8")
        assert "[[service]]" not in text and "materials" not in text  # not copied into the hall's file
    assert len({c.hall_id for c in configs}) == 18


# ---------------------------------------------------------------------------- extends


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_extends_merges_tables_key_by_key_and_replaces_arrays_whole(tmp_path: Path) -> None:
    write(tmp_path / "base" / "root.toml", 'title = "root"\n[hall]\ntimezone = "Asia/Shanghai"\nnumber_width = 3\n'
          '[hours]\nsun = []\n[[service]]\ncode = "a"\n[[service]]\ncode = "b"\n')
    write(tmp_path / "base" / "city.toml", 'extends = "root.toml"\n[hall]\nnumber_width = 4\n')
    hall = write(tmp_path / "hall.toml", 'extends = "base/city.toml"\n[hall]\nid = "x"\n'
                 '[hours]\nmon = ["08:30-11:30"]\n[[service]]\ncode = "c"\n')
    data = read_toml(hall)
    assert "extends" not in data
    assert data["hall"] == {"timezone": "Asia/Shanghai", "number_width": 4, "id": "x"}
    assert data["hours"] == {"sun": [], "mon": ["08:30-11:30"]}
    assert data["service"] == [{"code": "c"}] and data["title"] == "root"


def test_a_hall_may_replace_the_shared_counters_and_clerks(tmp_path: Path) -> None:
    shared = CITY / "shared.toml"
    hall = write(tmp_path / "small.toml", f'extends = "{shared}"\n[hall]\nid = "small"\n'
                 'name = { zh = "小厅", en = "Small hall" }\nhelp_counter = 1\n'
                 '[hours]\nmon = ["09:00-12:00"]\ntue = []\nwed = []\nthu = []\nfri = []\nsat = []\n'
                 'makeup_hours = ["09:00-12:00"]\n'
                 '[[counter]]\nnumber = 1\nservices = ["passport", "hk_macao", "document_pickup", "enquiry"]\n'
                 'clerk_a = "li"\nclerk_b = "wang"\n[[clerk]]\nid = "li"\nname = { zh = "李", en = "Li" }\n'
                 '[[clerk]]\nid = "wang"\nname = { zh = "王", en = "Wang" }\n')
    cfg = load_config(hall)
    assert [c.number for c in cfg.counters] == [1] and [c.id for c in cfg.clerks] == ["li", "wang"]
    assert len(cfg.services) == 4 and cfg.source == str(hall)


@pytest.mark.parametrize(("files", "code", "fragment"), [
    ({"a.toml": 'extends = "b.toml"\n', "b.toml": 'extends = "a.toml"\n'}, "CONFIG_EXTENDS", "loop"),
    ({"a.toml": 'extends = "a.toml"\n'}, "CONFIG_EXTENDS", "loop"),
    ({"a.toml": 'extends = "missing.toml"\n'}, "CONFIG_UNREADABLE", "cannot read"),
    ({"a.toml": "extends = 3\n"}, "CONFIG_EXTENDS", "an integer"),
    ({"a.toml": 'extends = ""\n'}, "CONFIG_EXTENDS", "path"),
    ({"a.toml": 'extends = "b.toml"\n', "b.toml": "[hall\n"}, "CONFIG_SYNTAX", "TOML"),
])
def test_a_bad_extends_is_refused_with_a_clear_error(tmp_path: Path, files: dict[str, str], code: str,
                                                     fragment: str) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "a.toml")
    assert err.value.code == code and fragment in err.value.problem
    assert " / " in err.value.problem  # English / 中文
    if code == "CONFIG_UNREADABLE":
        assert err.value.file.endswith("missing.toml")


def test_a_chain_too_deep_is_refused(tmp_path: Path) -> None:
    for i in range(12):
        write(tmp_path / f"f{i}.toml", f'extends = "f{i + 1}.toml"\n')
    write(tmp_path / "f12.toml", "")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "f0.toml")
    assert err.value.code == "CONFIG_EXTENDS"
