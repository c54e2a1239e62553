import pytest

from pipeline.data.ids import MAX_ID_LEN, id_sort_key, is_valid_object_id, validate_object_id
from pipeline.errors import BadInputError


@pytest.mark.parametrize("name", ["179", "0", "007", "chair_a", "A.b-c_1", "x" * MAX_ID_LEN, "9.5"])
def test_valid_ids_returned_unchanged(name):
    assert validate_object_id(name) is name
    assert is_valid_object_id(name)


@pytest.mark.parametrize(
    "name, rule",
    [
        ("", "is empty"),
        (".", "relative directory"),
        ("..", "relative directory"),
        ("a..b", "contains '..'"),
        ("a/b", "path separator '/'"),
        ("a\\b", "path separator '\\\\'"),
        ("a b", "whitespace ' '"),
        ("a\tb", "control"),
        ("a\nb", "control"),
        ("a\x00b", "control"),
        ("\u00b2", "non-ASCII character '²'"),
        ("caf\u00e9", "non-ASCII"),
        ("a\u200bb", "control"),  # zero-width space (category Cf)
        ("-a", "starts with '-'"),
        ("_a", "starts with '_'"),
        (".hidden", "starts with '.'"),
        ("a:b", "character ':'"),
        ("a*", "character '*'"),
        ("x" * (MAX_ID_LEN + 1), "129 characters long"),
    ],
)
def test_invalid_ids_name_rule_id_and_path(tmp_path, name, rule):
    where = tmp_path / "data" / "test" / "Chair"
    assert not is_valid_object_id(name)
    with pytest.raises(BadInputError) as ei:
        validate_object_id(name, path=where)
    msg = str(ei.value)
    assert repr(name) in msg and str(where) in msg and rule in msg
    assert "allowed: " in msg and "ASCII letters, digits" in msg
    assert ei.value.path == str(where)


def test_non_string_id_is_bad_input():
    assert not is_valid_object_id(179)
    with pytest.raises(BadInputError, match="is a int, not a string"):
        validate_object_id(179)  # type: ignore[arg-type]


def test_id_sort_key_natural_order_without_int():
    names = ["b", "10", "\u00b2", "2", "007", "a", "7", "9" * 5000, "10a"]
    assert sorted(names, key=id_sort_key) == ["2", "007", "7", "10", "9" * 5000, "10a", "a", "b", "\u00b2"]
