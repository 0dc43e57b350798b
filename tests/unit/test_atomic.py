import errno

import pytest

from llmpipe.atomic import WriteError, replace_dir, replace_file


def test_replace_dir_swaps_in_the_new_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with replace_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (out / "old.txt").is_file()  # the old output stays whole until the end
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert not (tmp_path / "out.tmp").exists()


def test_a_failure_leaves_the_previous_output_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), replace_dir(out) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    target = tmp_path / "m.json"
    target.write_text("{}")
    with pytest.raises(RuntimeError), replace_file(target) as tmp:
        tmp.write_text('{"half')
        raise RuntimeError("killed")
    assert target.read_text() == "{}"


def test_a_full_disk_removes_the_partial_file_and_names_the_output(tmp_path):
    """/dev/full answers every write with ENOSPC, as a full disk does."""
    out = tmp_path / "m.json"
    out.write_text("{}")
    with (
        pytest.raises(WriteError, match=r"cannot write .*m.json: no space left on the device"),
        replace_file(out) as tmp,
    ):
        tmp.symlink_to("/dev/full")
        tmp.write_bytes(b"x" * 100_000)
    assert out.read_text() == "{}" and not tmp.exists() and not tmp.is_symlink()


def test_a_permission_fault_is_one_message_and_leaves_no_temporary_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(WriteError, match="permission denied"), replace_dir(out) as tmp:
        (tmp / "half.bin").write_bytes(bytes(1000))
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp / "more.bin"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (out / "old.txt").read_text() == "old"


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(OSError, match="not a storage fault") as caught, replace_dir(tmp_path / "out"):
        raise OSError(errno.EINVAL, "not a storage fault")
    assert not isinstance(caught.value, WriteError) and not (tmp_path / "out.tmp").exists()
