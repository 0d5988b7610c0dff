"""The hall configuration: the shipped hall.toml, every validation rule, and round trips."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from queuehall.broker.config import (
    DEFAULT_CONFIG,
    MIN_RETENTION_DAYS,
    ConfigError,
    HallConfig,
    Period,
    SignIn,
    Text,
    load_config,
    parse_config,
)

SRC = "test.toml"


def minimal() -> dict[str, Any]:
    """A small valid config: one department, one priority class, two services on one counter."""
    return {
        "hall": {"name": {"zh": "测试大厅", "en": "Test Hall"}},
        "hours": {
            "mon": ["08:30-11:30", "13:30-17:00"],
            "tue": ["08:30-11:30"],
            "wed": [], "thu": [], "fri": [], "sat": [], "sun": [],
        },
        "department": [{"code": "dept", "name": {"zh": "部门", "en": "Department"}}],
        "priority": [{"code": "elderly", "name": {"zh": "老人", "en": "Seniors"}}],
        "service": [
            {"code": "s1", "prefix": "A", "name": {"zh": "业务一", "en": "Service one"}, "department": "dept"},
            {"code": "s2", "prefix": "B", "name": {"zh": "业务二", "en": "Service two"}, "department": "dept"},
        ],
        "counter": [{"number": 1, "services": ["s1", "s2"], "clerk_a": "c1", "clerk_b": "c2"}],
        "clerk": [
            {"id": "c1", "name": {"zh": "甲", "en": "Jia"}},
            {"id": "c2", "name": {"zh": "乙", "en": "Yi"}},
        ],
        "pause_reason": [{"code": "break", "name": {"zh": "休息", "en": "Break"}}],
    }


def fails(data: dict[str, Any], key: str, fragment: str, code: str | None = None) -> ConfigError:
    """Parse ``data`` and check the refusal names ``key`` and mentions ``fragment``."""
    with pytest.raises(ConfigError) as info:
        parse_config(data, SRC)
    err = info.value
    assert err.file == SRC
    assert err.key == key, str(err)
    assert fragment in err.problem, str(err)
    if code is not None:
        assert err.code == code, str(err)
    return err


def second_counter(d: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Add counter 2 with clerks c3/c4 (created here) and return it for further edits."""
    d["clerk"] += [{"id": "c3", "name": {"zh": "丙", "en": "Bing"}},
                   {"id": "c4", "name": {"zh": "丁", "en": "Ding"}}]
    counter = {"number": 2, "services": ["s1"], "clerk_a": "c3", "clerk_b": "c4", **fields}
    d["counter"].append(counter)
    return counter


# ---------------------------------------------------------------------------------------------
# The shipped hall
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hall() -> HallConfig:
    return load_config()


def test_shipped_hall_loads(hall: HallConfig) -> None:
    assert hall.source == str(DEFAULT_CONFIG)
    assert "政务服务中心" in hall.name.zh and hall.name.en
    assert hall.timezone == "Asia/Shanghai"
    assert hall.retention_days >= MIN_RETENTION_DAYS


def test_shipped_hall_departments_and_services(hall: HallConfig) -> None:
    departments = {d.code for d in hall.departments}
    assert departments == {"exit_entry", "household", "family_planning", "social_security", "civil_affairs",
                           "environment", "finance", "center_office"}
    by_dept: dict[str, set[str]] = {}
    for s in hall.services:
        by_dept.setdefault(s.department, set()).add(s.code)
    assert by_dept["exit_entry"] == {"passport", "hk_macao", "document_pickup"}
    assert by_dept["household"] == {"newborn", "move_in", "move_out", "small_town_hukou"}
    assert {"birth_service_cert", "birth_permit"} <= by_dept["family_planning"]
    assert by_dept["social_security"] == {"pension_eligibility", "insurance_subsidy",
                                          "unemployment_registration"}
    assert by_dept["civil_affairs"] == {"minimum_living_allowance", "serious_illness_aid", "low_rent_housing"}
    assert by_dept["environment"] == {"eia_approval"}
    assert by_dept["finance"] == {"unified_fees"}
    assert by_dept["center_office"] == {"consult_complaint"}


def test_shipped_hall_services_are_complete_and_bilingual(hall: HallConfig) -> None:
    for s in hall.services:
        assert len(s.prefix) == 1, s.code  # single-letter prefixes, one per service
        assert s.materials, f"{s.code} has no materials (一次性告知)"
        for text in (s.name, *s.materials, *([s.description] if s.description else [])):
            assert text.zh and text.en, s.code
        assert 20 <= s.target_wait_minutes <= 45
        assert hall.counters_serving(s.code)
    # The seeds' real lists (一次性告知), e.g. newborn registration and the minimum living allowance.
    newborn = hall.service("newborn")
    assert newborn is not None and any("四术单" in m.zh for m in newborn.materials)
    dibao = hall.service("minimum_living_allowance")
    assert dibao is not None and any("一寸照片4张" in m.zh for m in dibao.materials)
    passport = hall.service("passport")
    assert passport is not None and passport.promised_days == 15


def test_shipped_hall_priorities_hours_counters(hall: HallConfig) -> None:
    assert {p.code for p in hall.priority_classes} == {"elderly", "disabled", "military", "key_project"}
    eia = hall.service("eia_approval")
    assert eia is not None and "key_project" in eia.priority_classes
    open_day = (Period(time(8, 30), time(11, 30)), Period(time(13, 30), time(17, 0)))
    assert hall.hours.weekly == (open_day,) * 6 + ((),)
    assert hall.hours.chinese_calendar
    assert 10 <= len(hall.counters) <= 14
    for c in hall.counters:
        assert c.clerk_a != c.clerk_b and hall.clerk(c.clerk_a) and hall.clerk(c.clerk_b)
    fee_counters = hall.counters_serving("unified_fees")
    assert fee_counters and all(c.services == ("unified_fees",) for c in fee_counters)
    assert {r.code for r in hall.pause_reasons} >= {"break", "consult_supervisor", "system_fault", "meeting",
                                                    "temporary_leave"}


def test_shipped_hall_round_trips_through_to_dict(hall: HallConfig) -> None:
    exported = hall.to_dict()
    json.dumps(exported, ensure_ascii=False)  # JSON-safe, so it can be sent to clients
    assert parse_config(exported, hall.source) == hall


# ---------------------------------------------------------------------------------------------
# The minimal config: defaults and round trips
# ---------------------------------------------------------------------------------------------


def test_minimal_config_defaults() -> None:
    cfg = parse_config(minimal(), SRC)
    assert cfg.source == SRC
    assert (cfg.timezone, cfg.number_width, cfg.retention_days) == ("Asia/Shanghai", 3, 366)
    assert cfg.ticket_footer == Text("", "") and cfg.display_notice == Text("", "")
    c = cfg.calling
    assert (c.max_recalls, c.noshow_grace_minutes, c.noshow_reinstate, c.over_wait_minutes,
            c.priority_streak) == (2, 30, "back", 0, 2)
    assert len(cfg.hours.weekly) == 7 and cfg.hours.weekly[2:] == ((),) * 5
    assert cfg.hours.makeup_hours == cfg.hours.weekly[0]  # default: the first open weekday's hours
    s = cfg.services[0]
    assert (s.materials, s.promised_days, s.target_wait_minutes, s.daily_cap, s.cutoff_minutes,
            s.priority_classes, s.avg_service_minutes, s.description) == ((), 0, 30, 0, 30, (), 10.0, None)
    counter = cfg.counters[0]
    assert counter.name == Text("1号窗口", "Window 1") and counter.weights == {}
    assert cfg.department("dept") and cfg.priority_class("elderly") and cfg.pause_reason("break")
    assert cfg.department("nope") is None


MINIMAL_TOML = """
[hall]
name = { zh = "测试大厅", en = "Test Hall" }

[hours]
mon = ["08:30-11:30", "13:30-17:00"]
tue = ["08:30-11:30"]
wed = []
thu = []
fri = []
sat = []
sun = []

[[department]]
code = "dept"
name = { zh = "部门", en = "Department" }

[[priority]]
code = "elderly"
name = { zh = "老人", en = "Seniors" }

[[service]]
code = "s1"
prefix = "A"
name = { zh = "业务一", en = "Service one" }
department = "dept"

[[service]]
code = "s2"
prefix = "B"
name = { zh = "业务二", en = "Service two" }
department = "dept"

[[counter]]
number = 1
services = ["s1", "s2"]
clerk_a = "c1"
clerk_b = "c2"

[[clerk]]
id = "c1"
name = { zh = "甲", en = "Jia" }

[[clerk]]
id = "c2"
name = { zh = "乙", en = "Yi" }

[[pause_reason]]
code = "break"
name = { zh = "休息", en = "Break" }
"""


def test_minimal_toml_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "hall.toml"
    path.write_text(MINIMAL_TOML, encoding="utf-8")
    loaded = load_config(path)
    assert loaded.source == str(path)
    assert loaded == dataclasses.replace(parse_config(minimal(), SRC), source=str(path))
    assert parse_config(loaded.to_dict(), str(path)) == loaded


def test_full_config_round_trips_through_to_dict() -> None:
    d = minimal()
    d["hall"] |= {"ticket_footer": {"zh": "页脚", "en": "Footer"}, "display_notice": {"zh": "通知", "en": "Notice"}}
    d["hours"] |= {"closed_days": ["2025-10-08"], "working_days": ["2025-09-28"], "makeup_hours": ["09:00-12:00"]}
    d["service"][0] |= {"materials": [{"zh": "身份证", "en": "ID card"}], "priority_classes": ["elderly"],
                        "description": {"zh": "说明", "en": "Notes"}, "avg_service_minutes": 7.5}
    d["counter"][0]["weights"] = {"s1": 2, "s2": 1}
    cfg = parse_config(d, SRC)
    assert cfg.hours.closed_days == {date(2025, 10, 8)}
    assert cfg.services[0].avg_service_minutes == 7.5
    assert parse_config(cfg.to_dict(), SRC) == cfg


def test_bom_and_native_toml_dates_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "hall.toml"
    text = MINIMAL_TOML.replace("sun = []", "sun = []\nclosed_days = [2025-10-01, \"2025-10-02\"]")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # as Windows Notepad saves it
    cfg = load_config(path)
    assert cfg.hours.closed_days == {date(2025, 10, 1), date(2025, 10, 2)}


# ---------------------------------------------------------------------------------------------
# The file itself
# ---------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert (info.value.key, info.value.code) == ("(file)", "CONFIG_UNREADABLE")
    assert "cannot read" in info.value.problem


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "hall.toml"
    path.write_bytes(MINIMAL_TOML.encode("gbk"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.code == "CONFIG_UNREADABLE" and "UTF-8" in info.value.problem


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "hall.toml"
    path.write_text("[hall\nname = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert (err.key, err.code) == ("(toml)", "CONFIG_SYNTAX")
    assert "line 1" in err.problem
    assert str(err).startswith(f"{path}: (toml): not valid TOML")


def test_error_text_is_file_key_problem_and_bilingual() -> None:
    d = minimal()
    d["service"][0]["prefix"] = "a"
    err = fails(d, "service[1].prefix", "uppercase", "CONFIG_BAD_PREFIX")
    assert str(err) == f"{SRC}: service[1].prefix: {err.problem}"
    assert "大写" in err.problem


# ---------------------------------------------------------------------------------------------
# Required keys, types and unknown keys
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path, key", [
    (("hall",), "hall"),
    (("hall", "name"), "hall.name"),
    (("hours",), "hours"),
    (("hours", "sun"), "hours.sun"),
    (("service", 0, "prefix"), "service[1].prefix"),
    (("service", 1, "department"), "service[2].department"),
    (("counter", 0, "clerk_b"), "counter[1].clerk_b"),
    (("clerk", 1, "name"), "clerk[2].name"),
    (("clerk",), "clerk"),
])
def test_required_keys(path: tuple[Any, ...], key: str) -> None:
    d = minimal()
    target: Any = d
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    fails(d, key, "required", "CONFIG_MISSING_KEY")


def test_missing_text_language() -> None:
    d = minimal()
    del d["department"][0]["name"]["en"]
    fails(d, "department[1].name.en", "required", "CONFIG_MISSING_KEY")


@pytest.mark.parametrize("where, key, value, fragment", [
    ("hall", "number_width", "3", "is a string; expected a whole number"),
    ("hall", "name", "大厅", "expected a table {zh"),
    ("calling", "max_recalls", True, "is true/false; expected a whole number"),
    ("calling", "priority_streak", 2.0, "is a decimal number; expected a whole number"),
    ("hours", "chinese_calendar", "yes", "expected true or false"),
    ("hours", "mon", "08:30-11:30", "expected an array"),
])
def test_wrong_types(where: str, key: str, value: Any, fragment: str) -> None:
    d = minimal()
    d.setdefault(where, {})[key] = value
    fails(d, f"{where}.{key}", fragment, "CONFIG_WRONG_TYPE")


def test_not_a_document() -> None:
    fails([], "(file)", "expected a TOML document", "CONFIG_WRONG_TYPE")  # type: ignore[arg-type]


def test_single_table_instead_of_array() -> None:
    d = minimal()
    d["service"] = d["service"][0]
    fails(d, "service", "write [[service]], not [service]", "CONFIG_WRONG_TYPE")


@pytest.mark.parametrize("array", ["department", "service", "counter", "clerk", "pause_reason"])
def test_required_arrays_are_not_empty(array: str) -> None:
    d = minimal()
    d[array] = []
    fails(d, array, f"at least one [[{array}]]", "CONFIG_EMPTY")


def test_empty_text_rejected() -> None:
    d = minimal()
    d["service"][0]["name"]["zh"] = "  "
    fails(d, "service[1].name.zh", "must not be empty", "CONFIG_EMPTY")


@pytest.mark.parametrize("mutate, key, fragment", [
    (lambda d: d.__setitem__("halls", {}), "halls", "did you mean 'hall'?"),
    (lambda d: d["service"][0].__setitem__("prefx", "A"), "service[1].prefx", "did you mean 'prefix'?"),
    (lambda d: d["calling"].__setitem__("max_recall", 3), "calling.max_recall", "did you mean 'max_recalls'?"),
    (lambda d: d["hours"].__setitem__("thur", []), "hours.thur", "allowed here"),
    (lambda d: d["hall"]["name"].__setitem__("fr", "Salle"), "hall.name.fr", "allowed here: zh, en"),
])
def test_unknown_keys_are_rejected(mutate: Any, key: str, fragment: str) -> None:
    d = minimal()
    d["calling"] = {}
    mutate(d)
    fails(d, key, fragment, "CONFIG_UNKNOWN_KEY")


# ---------------------------------------------------------------------------------------------
# Codes, prefixes and uniqueness
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["a", "ABC", "1", "A1", "", "Ä"])
def test_prefix_format(prefix: str) -> None:
    d = minimal()
    d["service"][0]["prefix"] = prefix
    code = "CONFIG_EMPTY" if not prefix else "CONFIG_BAD_PREFIX"
    fails(d, "service[1].prefix", "must not be empty" if not prefix else "1–2 uppercase ASCII letters", code)


def test_two_letter_prefix_allowed() -> None:
    d = minimal()
    d["service"][0]["prefix"] = "HK"
    assert parse_config(d, SRC).services[0].prefix == "HK"


def test_prefix_unique_across_services() -> None:
    d = minimal()
    d["service"][1]["prefix"] = "A"
    fails(d, "service[2].prefix", "already used by service[1]", "CONFIG_DUPLICATE")


@pytest.mark.parametrize("array, field_name, extra", [
    ("department", "code", {"code": "dept", "name": {"zh": "又", "en": "Again"}}),
    ("priority", "code", {"code": "elderly", "name": {"zh": "又", "en": "Again"}}),
    ("service", "code", {"code": "s1", "prefix": "C", "name": {"zh": "又", "en": "Again"}, "department": "dept"}),
    ("clerk", "id", {"id": "c2", "name": {"zh": "又", "en": "Again"}}),
    ("pause_reason", "code", {"code": "break", "name": {"zh": "又", "en": "Again"}}),
])
def test_codes_unique(array: str, field_name: str, extra: dict[str, Any]) -> None:
    d = minimal()
    d[array].append(extra)
    n = len(d[array])
    fails(d, f"{array}[{n}].{field_name}", f"already used by {array}[", "CONFIG_DUPLICATE")


def test_counter_numbers_unique() -> None:
    d = minimal()
    second_counter(d, number=1)
    fails(d, "counter[2].number", "already used by counter[1]", "CONFIG_DUPLICATE")


@pytest.mark.parametrize("code", ["1abc", "护照", "has space", "x" * 33])
def test_code_format(code: str) -> None:
    d = minimal()
    d["department"][0]["code"] = code
    fails(d, "department[1].code", "must start with an ASCII letter", "CONFIG_BAD_CODE")


# ---------------------------------------------------------------------------------------------
# Counters, weights and clerks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number, fragment, code", [
    (0, "from 1 to 999", "CONFIG_OUT_OF_RANGE"),
    (-3, "from 1 to 999", "CONFIG_OUT_OF_RANGE"),
    ("1", "expected a whole number", "CONFIG_WRONG_TYPE"),
])
def test_counter_number_positive_int(number: Any, fragment: str, code: str) -> None:
    d = minimal()
    d["counter"][0]["number"] = number
    fails(d, "counter[1].number", fragment, code)


def test_counter_service_must_exist() -> None:
    d = minimal()
    d["counter"][0]["services"] = ["s1", "passport"]
    fails(d, "counter[1].services[2]", "'passport' is not a [[service]]", "CONFIG_UNKNOWN_REF")


def test_counter_service_listed_twice() -> None:
    d = minimal()
    d["counter"][0]["services"] = ["s1", "s2", "s1"]
    fails(d, "counter[1].services[3]", "listed twice", "CONFIG_DUPLICATE")


def test_counter_needs_a_service() -> None:
    d = minimal()
    d["counter"][0]["services"] = []
    fails(d, "counter[1].services", "at least one service", "CONFIG_EMPTY")


@pytest.mark.parametrize("weights, key, fragment", [
    ({"s1": 2, "s2": 1, "s3": 1}, "counter[1].weights.s3", "not one of this counter's services"),
    ({"s1": 0, "s2": 1}, "counter[1].weights.s1", "from 1 to 100"),
    ({"s1": 2, "s2": 1.5}, "counter[1].weights.s2", "from 1 to 100"),
    ({"s1": True, "s2": 1}, "counter[1].weights.s1", "from 1 to 100"),
    ({"s1": 2}, "counter[1].weights", "gives no weight to s2"),
])
def test_counter_weights(weights: dict[str, Any], key: str, fragment: str) -> None:
    d = minimal()
    d["counter"][0]["weights"] = weights
    fails(d, key, fragment, "CONFIG_BAD_WEIGHTS")


def test_counter_weights_must_be_a_table() -> None:
    d = minimal()
    d["counter"][0]["weights"] = [2, 1]
    fails(d, "counter[1].weights", "expected a table like { s1 = 2 }", "CONFIG_WRONG_TYPE")


def test_counter_clerks_must_exist() -> None:
    d = minimal()
    d["counter"][0]["clerk_a"] = "c9"
    fails(d, "counter[1].clerk_a", "'c9' is not a [[clerk]]", "CONFIG_UNKNOWN_REF")


def test_counter_clerks_differ() -> None:
    d = minimal()
    d["counter"][0]["clerk_b"] = "c1"
    fails(d, "counter[1].clerk_b", "same as clerk_a", "CONFIG_SAME_CLERK")


def test_clerk_holds_one_a_post_only() -> None:
    d = minimal()
    second_counter(d, clerk_a="c1")
    fails(d, "counter[2].clerk_a", "A post of one counter only", "CONFIG_DUPLICATE")


def test_clerk_may_be_b_post_elsewhere() -> None:
    d = minimal()
    second_counter(d, clerk_b="c1")  # the A of window 1 backs up window 2 (A、B岗互为补位)
    assert parse_config(d, SRC).counter(2).clerk_b == "c1"  # type: ignore[union-attr]


@pytest.mark.parametrize("pin", ["1234", "00012345", 1234, ""])
def test_a_pin_in_the_file_is_refused_with_the_way_to_set_it(pin: Any) -> None:
    """PINs left hall.toml: a file that still has one is refused (not ignored), saying in both
    languages how to set the PIN instead, whatever the value."""
    d = minimal()
    d["clerk"][1]["pin"] = pin
    err = fails(d, "clerk[2].pin", "queuehall clerks set-pin c2", "CONFIG_PIN_IN_FILE")
    assert "queuehall clerks import-pins" in err.problem
    assert "不再保存密码" in err.problem


def test_the_default_hall_has_no_pins_and_the_sign_in_lock() -> None:
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    assert not re.search(r"^\s*pin\s*=", text, re.M)
    cfg = load_config()
    assert (cfg.sign_in.lock_after, cfg.sign_in.lock_minutes) == (5, 15)


def test_sign_in_lock_settings() -> None:
    d = minimal()
    assert parse_config(d, SRC).sign_in == SignIn(5, 15)
    d["sign_in"] = {"lock_after": 3, "lock_minutes": 30}
    assert parse_config(d, SRC).sign_in == SignIn(3, 30)
    d["sign_in"] = {"lock_after": 0}
    fails(d, "sign_in.lock_after", "", "CONFIG_OUT_OF_RANGE")
    d["sign_in"] = {"lock_minutes": "15"}
    fails(d, "sign_in.lock_minutes", "", None)
    d["sign_in"] = {"lock_secs": 1}
    fails(d, "sign_in.lock_secs", "", None)


# ---------------------------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------------------------


def test_service_department_must_exist() -> None:
    d = minimal()
    d["service"][1]["department"] = "police"
    fails(d, "service[2].department", "'police' is not a [[department]]", "CONFIG_UNKNOWN_REF")


def test_service_priority_classes_must_exist() -> None:
    d = minimal()
    d["service"][0]["priority_classes"] = ["elderly", "vip"]
    fails(d, "service[1].priority_classes[2]", "'vip' is not a [[priority]]", "CONFIG_UNKNOWN_REF")


def test_every_service_is_served() -> None:
    d = minimal()
    d["counter"][0]["services"] = ["s1"]
    fails(d, "service[2].code", "no counter serves 's2'", "CONFIG_UNSERVED")


@pytest.mark.parametrize("materials, key, fragment, code", [
    (["身份证"], "service[1].materials[1]", "expected a table {zh", "CONFIG_WRONG_TYPE"),
    ([{"zh": "身份证"}], "service[1].materials[1].en", "required", "CONFIG_MISSING_KEY"),
    ([{"zh": "身份证", "en": ""}], "service[1].materials[1].en", "must not be empty", "CONFIG_EMPTY"),
    ({"zh": "身份证", "en": "ID"}, "service[1].materials", "expected an array", "CONFIG_WRONG_TYPE"),
])
def test_service_materials(materials: Any, key: str, fragment: str, code: str) -> None:
    d = minimal()
    d["service"][0]["materials"] = materials
    fails(d, key, fragment, code)


@pytest.mark.parametrize("field_name, value", [
    ("promised_days", -1),
    ("target_wait_minutes", 0),
    ("daily_cap", -1),
    ("cutoff_minutes", -1),
    ("avg_service_minutes", 0),
    ("avg_service_minutes", -2.5),
])
def test_service_numbers_in_range(field_name: str, value: int) -> None:
    d = minimal()
    d["service"][0][field_name] = value
    fails(d, f"service[1].{field_name}", f"is {value}", "CONFIG_OUT_OF_RANGE")


def test_daily_cap_fits_number_width() -> None:
    d = minimal()
    d["service"][0]["daily_cap"] = 1000
    fails(d, "service[1].daily_cap", "at most 999", "CONFIG_OUT_OF_RANGE")
    d["hall"]["number_width"] = 4
    assert parse_config(d, SRC).services[0].daily_cap == 1000


# ---------------------------------------------------------------------------------------------
# The hall and the calling rules
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 6])
def test_number_width(width: int) -> None:
    d = minimal()
    d["hall"]["number_width"] = width
    fails(d, "hall.number_width", "from 2 to 5", "CONFIG_OUT_OF_RANGE")


def test_retention_days_more_than_half_a_year() -> None:
    d = minimal()
    d["hall"]["retention_days"] = MIN_RETENTION_DAYS - 1
    fails(d, "hall.retention_days", "at least 183 days", "CONFIG_RETENTION")
    d["hall"]["retention_days"] = MIN_RETENTION_DAYS
    assert parse_config(d, SRC).retention_days == 183


@pytest.mark.parametrize("tz, fragment, code", [
    ("Asia/Shangai", "not a known IANA time zone", "CONFIG_BAD_TIMEZONE"),
    ("../../etc/passwd", "not a known IANA time zone", "CONFIG_BAD_TIMEZONE"),
    ("", "must not be empty", "CONFIG_EMPTY"),
])
def test_timezone(tz: str, fragment: str, code: str) -> None:
    d = minimal()
    d["hall"]["timezone"] = tz
    fails(d, "hall.timezone", fragment, code)


def test_noshow_reinstate_choice() -> None:
    d = minimal()
    d["calling"] = {"noshow_reinstate": "middle"}
    fails(d, "calling.noshow_reinstate", 'expected "front" or "back"', "CONFIG_BAD_CHOICE")
    d["calling"]["noshow_reinstate"] = "front"
    assert parse_config(d, SRC).calling.noshow_reinstate == "front"


@pytest.mark.parametrize("field_name, value", [
    ("max_recalls", -1),
    ("noshow_grace_minutes", -5),
    ("over_wait_minutes", -1),
    ("priority_streak", 0),
])
def test_calling_numbers_in_range(field_name: str, value: int) -> None:
    d = minimal()
    d["calling"] = {field_name: value}
    fails(d, f"calling.{field_name}", f"is {value}", "CONFIG_OUT_OF_RANGE")


# ---------------------------------------------------------------------------------------------
# Opening hours
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("period, fragment", [
    ("8:30-11:30", "is not a period"),
    ("0830-1130", "is not a period"),
    ("08:30-25:00", "impossible time"),
    ("08:60-11:30", "impossible time"),
    ("11:30-08:30", "does not end after it starts"),
    ("08:30-08:30", "does not end after it starts"),
])
def test_period_format(period: str, fragment: str) -> None:
    d = minimal()
    d["hours"]["mon"] = [period]
    fails(d, "hours.mon[1]", fragment, "CONFIG_BAD_PERIOD")


def test_period_must_be_text() -> None:
    d = minimal()
    d["hours"]["tue"] = [830]
    fails(d, "hours.tue[1]", 'expected "HH:MM-HH:MM"', "CONFIG_WRONG_TYPE")


@pytest.mark.parametrize("periods", [
    ["13:30-17:00", "08:30-11:30"],  # out of order
    ["08:30-12:00", "11:30-17:00"],  # overlapping
])
def test_periods_sorted_without_overlap(periods: list[str]) -> None:
    d = minimal()
    d["hours"]["mon"] = periods
    fails(d, "hours.mon[2]", "list a day's periods in order without overlaps", "CONFIG_PERIOD_ORDER")


def test_touching_periods_and_spaces_are_fine() -> None:
    d = minimal()
    d["hours"]["mon"] = ["08:30 - 11:30", "11:30-12:00"]
    assert parse_config(d, SRC).hours.weekly[0] == (Period(time(8, 30), time(11, 30)),
                                                     Period(time(11, 30), time(12, 0)))


def test_hall_must_open_some_day() -> None:
    d = minimal()
    for day in ("mon", "tue"):
        d["hours"][day] = []
    fails(d, "hours", "open on no weekday", "CONFIG_NEVER_OPEN")


@pytest.mark.parametrize("value, fragment", [
    ("2025-02-30", "not a real date"),
    ("2025/01/01", "expected an ISO date"),
    ("20250101", "expected an ISO date"),
    (20250101, "expected an ISO date"),
    (datetime(2025, 1, 1, 8, 0), "is a date-time"),
])
def test_dates_iso(value: Any, fragment: str) -> None:
    d = minimal()
    d["hours"]["closed_days"] = ["2025-01-02", value]
    fails(d, "hours.closed_days[2]", fragment, "CONFIG_BAD_DATE")


def test_date_listed_twice() -> None:
    d = minimal()
    d["hours"]["working_days"] = ["2025-09-28", date(2025, 9, 28)]
    fails(d, "hours.working_days[2]", "listed twice", "CONFIG_DUPLICATE")


def test_day_cannot_be_closed_and_working() -> None:
    d = minimal()
    d["hours"] |= {"closed_days": ["2025-10-01"], "working_days": ["2025-09-28", "2025-10-01"]}
    fails(d, "hours.working_days[2]", "also in hours.closed_days", "CONFIG_DATE_CONFLICT")


def test_makeup_hours_needed_when_makeup_days_can_happen() -> None:
    d = minimal()
    d["hours"]["makeup_hours"] = []
    fails(d, "hours.makeup_hours", "make-up working days can occur", "CONFIG_NO_MAKEUP_HOURS")
    d["hours"]["chinese_calendar"] = False
    cfg = parse_config(d, SRC)
    assert cfg.hours.makeup_hours == () and not cfg.hours.chinese_calendar


def test_makeup_hours_validated_like_weekdays() -> None:
    d = minimal()
    d["hours"]["makeup_hours"] = ["09:00-12:00", "10:00-11:00"]
    fails(d, "hours.makeup_hours[2]", "without overlaps", "CONFIG_PERIOD_ORDER")


def test_makeup_hours_default_is_first_open_weekday() -> None:
    d = minimal()
    d["hours"]["mon"] = []
    assert parse_config(d, SRC).hours.makeup_hours == (Period(time(8, 30), time(11, 30)),)


def test_parse_does_not_mutate_input() -> None:
    d = minimal()
    before = copy.deepcopy(d)
    parse_config(d, SRC)
    assert d == before


# ---------------------------------------------------------------------------------------------- [[hours.notice]]

NOTICE_TOML = MINIMAL_TOML.replace("[[department]]", '''[[hours.notice]]
year = 2027
title = "an example, not the official notice"
holidays = ["2027-01-01", "2027-02-05..2027-02-11", 2027-06-09]
working_days = ["2026-12-27", "2027-02-20"]

[[department]]''', 1)


def test_notice_is_read_with_ranges_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "hall.toml"
    path.write_text(NOTICE_TOML, encoding="utf-8")
    cfg = load_config(path)
    (n,) = cfg.hours.notices
    assert (n.year, n.title) == (2027, "an example, not the official notice")
    assert sorted(n.holidays) == [date(2027, 1, 1), *(date(2027, 2, d) for d in range(5, 12)), date(2027, 6, 9)]
    assert n.working_days == {date(2026, 12, 27), date(2027, 2, 20)}
    assert parse_config(cfg.to_dict(), str(path)) == cfg
    assert parse_config(minimal(), SRC).hours.notices == ()


@pytest.mark.parametrize("notice, key, fragment, code", [
    ({"holidays": ["2027-01-01"]}, "hours.notice[1].year", "required", "CONFIG_MISSING_KEY"),
    ({"year": 2027}, "hours.notice[1].holidays", "required", "CONFIG_MISSING_KEY"),
    ({"year": 1999, "holidays": []}, "hours.notice[1].year", "from 2000 to 2100", "CONFIG_OUT_OF_RANGE"),
    ({"year": 2027, "holidays": ["2027-02-11..2027-02-05"]}, "hours.notice[1].holidays[1]", "first to last",
     "CONFIG_BAD_DATE"),
    ({"year": 2027, "holidays": ["2027-02-30"]}, "hours.notice[1].holidays[1]", "not a real date",
     "CONFIG_BAD_DATE"),
    ({"year": 2027, "holidays": ["2027-02-05..2027-02-07", "2027-02-06"]}, "hours.notice[1].holidays[2]",
     "listed twice", "CONFIG_DUPLICATE"),
    ({"year": 2027, "holidays": ["2030-01-01"]}, "hours.notice[1].holidays", "too far from the notice's year",
     "CONFIG_BAD_DATE"),
    ({"year": 2027, "holidays": ["2027-02-05..2027-02-11"], "working_days": ["2027-02-07"]},
     "hours.notice[1].working_days", "is also in holidays", "CONFIG_DATE_CONFLICT"),
    ({"year": 2027, "holidays": [], "days": []}, "hours.notice[1].days", "unknown key", "CONFIG_UNKNOWN_KEY"),
])
def test_notice_errors(notice: dict[str, Any], key: str, fragment: str, code: str) -> None:
    d = minimal()
    d["hours"]["notice"] = [notice]
    fails(d, key, fragment, code)


def test_one_notice_per_year() -> None:
    d = minimal()
    d["hours"]["notice"] = [{"year": 2027, "holidays": []}, {"year": 2027, "holidays": []}]
    fails(d, "hours.notice[2].year", "one [[hours.notice]] per year", "CONFIG_DUPLICATE")
    d["hours"]["notice"] = {"year": 2027, "holidays": []}
    fails(d, "hours.notice", "write [[hours.notice]], not [hours.notice]", "CONFIG_WRONG_TYPE")


# ---------------------------------------------------------------------------------------------
# The help counter (where a citizen goes when the kiosk cannot print)
# ---------------------------------------------------------------------------------------------


def test_help_counter_is_optional_and_round_trips(hall: HallConfig) -> None:
    assert parse_config(minimal(), SRC).help_counter is None
    d = minimal()
    d["hall"]["help_counter"] = 1
    cfg = parse_config(d, SRC)
    assert cfg.help_counter == 1
    assert parse_config(cfg.to_dict(), SRC).help_counter == 1
    assert hall.help_counter == 12  # the shipped hall: 咨询投诉 (consultation and complaints)


@pytest.mark.parametrize(("value", "fragment", "code"), [
    (7, "7 is not the number of a [[counter]] defined in this file (known: 1)", "CONFIG_UNKNOWN_REF"),
    ("1", "expected a whole number", "CONFIG_WRONG_TYPE"),
    (True, "expected a whole number", "CONFIG_WRONG_TYPE"),
    (0, "of at least 1", "CONFIG_OUT_OF_RANGE"),
])
def test_help_counter_must_be_a_counter(value: Any, fragment: str, code: str) -> None:
    d = minimal()
    d["hall"]["help_counter"] = value
    err = fails(d, "hall.help_counter", fragment, code)
    assert " / " in err.problem and any("\u4e00" <= ch <= "\u9fff" for ch in err.problem)  # both languages


# ---------------------------------------------------------------------------------------------
# A service's role: the hall's fee payment (统一收费), listed first when a clerk transfers
# ---------------------------------------------------------------------------------------------


def test_service_role_fee_is_optional_checked_and_round_trips(hall: HallConfig) -> None:
    assert all(s.role is None for s in parse_config(minimal(), SRC).services)
    d = minimal()
    d["service"][1]["role"] = "fee"
    cfg = parse_config(d, SRC)
    assert [s.role for s in cfg.services] == [None, "fee"]
    assert [s.role for s in parse_config(cfg.to_dict(), SRC).services] == [None, "fee"]
    # The shipped hall: 统一收费 at window 11 (the seed's 收费窗口 designated by the finance bureau).
    assert [s.code for s in hall.services if s.role == "fee"] == ["unified_fees"]
    d["service"][1]["role"] = "cashier"
    err = fails(d, "service[2].role", 'is \'cashier\'; expected "fee"', "CONFIG_BAD_CHOICE")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in err.problem)  # both languages
    d["service"][1]["role"] = 1
    fails(d, "service[2].role", "expected", "CONFIG_WRONG_TYPE")
