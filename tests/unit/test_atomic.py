import pytest

from llmpipe.atomic import replace_dir, replace_file


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
