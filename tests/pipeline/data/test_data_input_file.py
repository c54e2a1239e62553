"""Untrusted input names: present-but-unusable files are errors, never "absent", never a hang."""

import os
import threading

import pytest

from pipeline.data.input_file import check_regular, exists, open_regular, read_bytes, read_text
from pipeline.errors import BadInputError


def _special(tmp_path, kind):
    p = tmp_path / f"x.{kind}"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dir":
        p.mkdir()
    elif kind == "loop":
        os.symlink(p, p)
    elif kind == "broken":
        os.symlink(tmp_path / "nowhere", p)
    return p


def _no_hang(fn, *args):
    """Run fn in a thread: a FIFO opened for reading would block it for ever."""
    out = {}

    def run():
        try:
            out["value"] = fn(*args)
        except Exception as e:  # noqa: BLE001
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), f"{fn.__name__} blocked"
    return out


@pytest.mark.parametrize("kind, says", [("fifo", "FIFO"), ("dir", "directory"), ("loop", "too many levels"), ("broken", "broken symlink")])
def test_present_but_not_a_regular_file_is_an_error_naming_it(tmp_path, kind, says):
    p = _special(tmp_path, kind)
    assert exists(p) and not p.is_file()  # the trap: is_file() says "absent"
    for fn in (check_regular, open_regular, read_bytes, read_text):
        out = _no_hang(fn, p)
        err = out.get("error")
        assert isinstance(err, BadInputError), (fn.__name__, out)
        assert str(p) in str(err) and says.lower() in str(err).lower()


def test_character_device_is_refused():
    err = _no_hang(read_bytes, "/dev/zero")["error"]  # reading it would never end
    assert isinstance(err, BadInputError) and "character device" in str(err)


def test_missing_file_does_not_exist_and_cannot_be_read(tmp_path):
    assert not exists(tmp_path / "none") and not exists(tmp_path / "none" / "deeper")
    with pytest.raises(BadInputError, match="cannot read"):
        read_bytes(tmp_path / "none")


def test_size_cap_and_symlink_to_regular_file(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("héllo")
    link = tmp_path / "link.txt"
    os.symlink(p, link)
    assert read_text(link) == "héllo" and check_regular(link) == 6
    with open_regular(link) as f:
        assert f.name == str(link) and f.read() == "héllo".encode()
    with pytest.raises(BadInputError, match="6 bytes, larger than the 5-byte cap") as ei:
        read_bytes(p, max_bytes=5, object_id="Chair/1")
    assert "object Chair/1" in str(ei.value) and str(p) in str(ei.value)


def test_undecodable_text_is_an_error(tmp_path):
    p = tmp_path / "b.json"
    p.write_bytes(b"\xff\xfe{}")
    with pytest.raises(BadInputError, match="not UTF-8"):
        read_text(p)
