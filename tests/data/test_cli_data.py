"""``cnnkit datasets`` and ``cnnkit show-batch``."""

from __future__ import annotations

from PIL import Image

from cnnkit.cli import COMMAND_MODULES, main


def test_datasets_lists_names_shapes_splits_and_where_the_files_are(tmp_path, capsys, fx, monkeypatch):
    import torchvision.datasets as tvd

    fx.write_cifar(tmp_path)
    fx.patch_checksums(monkeypatch, tvd.CIFAR10, tmp_path)
    monkeypatch.setenv("COLUMNS", "400")
    assert main(["datasets", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert "3x32x32" in lines["cifar10"] and "train 50,000, test 10,000" in lines["cifar10"]
    assert "present" in lines["cifar10"] and "missing" in lines["mnist"] and "1x28x28" in lines["mnist"]
    assert "built in" in lines["digits"] and "folder:PATH" in out and "csv:FILE" in out
    assert "stl10" in lines and "svhn" in lines and "kmnist" in lines and "fashion-mnist" in lines


def test_datasets_at_100_columns_shows_paths_whole_and_relative_to_the_root(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["datasets", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.count("│") > 3]
    assert all(len(line) <= 100 for line in table)
    lines = {line.split("│")[1].strip(): line for line in table}
    # each folder whole on its row (not folded into "cifar-1" + "0-batches-py"), relative to the root
    assert "cifar-10-batches-py/" in lines["cifar10"] and "cifar-100-python/" in lines["cifar100"]
    assert "MNIST/raw/" in lines["mnist"] and "train_32x32.mat" in lines["svhn"]
    assert out.count(str(tmp_path)) == 1 and "relative to the data root" in out
    assert "…" not in out


def test_show_batch_writes_a_labelled_grid(tmp_path, capsys, fx):
    assert "show_batch" in COMMAND_MODULES
    out = tmp_path / "batch.png"
    assert main(["show-batch", "digits", "-o", str(out), "--n", "12", "--input-size", "16"]) == 0
    text = capsys.readouterr().out
    # auto at 16 px: digits are chiral (no flips), shifts of 1/16 of the side
    assert "12 train images" in text and "augment: translate=1,rotate=10" in text and "no flips" in text
    with Image.open(out) as im:
        assert im.size[0] > 300
    root = fx.make_messy_folder(tmp_path / "messy")
    assert main(["show-batch", f"folder:{root}", "-o", str(out), "--augment", "flip,erase=0.5", "--n", "4"]) == 0
    text = capsys.readouterr().out
    assert "warning: skipped 5 bad files" in text and "augment: flip,erase=0.5" in text
    assert main(["show-batch", "digits", "--augment", "spin=3", "-o", str(out)]) == 2
    assert "unknown augmentation 'spin'" in capsys.readouterr().err
