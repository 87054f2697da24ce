"""`mnist-edge predict`: image files in, one line per file out, through a real server."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from serve_harness import REPO, ServerProcess, mnist_test_set

from mnist_edge.cli import main as mnist_edge


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("server") / "log.jsonl") as running:
        yield running
        assert running.stop() == 0


def sample_digits(folder) -> dict[str, int]:
    """The shipped examples/digit_<label>.png, or test-set digits written as PNGs when there are none."""
    shipped = sorted((REPO / "examples").glob("digit_*.png"))
    if shipped:
        return {str(path): int(path.stem.split("_")[1]) for path in shipped}
    images, labels = mnist_test_set(10)
    samples = {}
    for image, label in zip(images, labels, strict=True):
        path = folder / f"digit_{label}.png"
        Image.fromarray(image).save(path)
        samples[str(path)] = int(label)
    return samples


def printed_labels(output: str) -> dict[str, int]:
    lines = [line.rsplit(": ", 1) for line in output.splitlines()]
    return {path: int(answer.split(" (")[0]) for path, answer in lines}


def test_predict_prints_the_right_digit_for_each_sample(server, tmp_path, capsys):
    samples = sample_digits(tmp_path)
    assert mnist_edge(["predict", "--server", server.target, *samples]) == 0
    output = capsys.readouterr().out
    assert printed_labels(output) == samples
    assert all(line.endswith("%)") for line in output.splitlines())


def test_invert_reads_dark_digits_on_light_paper_of_any_size(server, tmp_path, capsys):
    images, labels = mnist_test_set(3)
    paths = []
    for index, image in enumerate(images):
        paper = Image.fromarray(255 - image).resize((56, 56))  # a dark digit on white, twice the size
        canvas = Image.new("L", (56, 64), 255)  # on a taller, non-square page
        canvas.paste(paper, (0, 4))
        paths.append(tmp_path / f"scan_{index}.jpg")
        canvas.save(paths[-1], quality=95)
    assert mnist_edge(["predict", "--server", server.target, "--invert", *map(str, paths)]) == 0
    assert list(printed_labels(capsys.readouterr().out).values()) == labels.tolist()


def test_predict_reads_pgm(server, tmp_path, capsys):
    images, labels = mnist_test_set(1)
    Image.fromarray(images[0]).save(tmp_path / "digit.pgm")
    assert mnist_edge(["predict", "--server", server.target, str(tmp_path / "digit.pgm")]) == 0
    assert list(printed_labels(capsys.readouterr().out).values()) == [labels[0]]


def test_an_unreadable_image_is_one_sentence_and_exit_2(server, tmp_path, capsys):
    (tmp_path / "notes.png").write_text("not an image")
    assert mnist_edge(["predict", "--server", server.target, str(tmp_path / "notes.png")]) == 2
    error = capsys.readouterr().err
    assert f"cannot read {tmp_path / 'notes.png'} as an image" in error and error.count("\n") == 1


def test_no_server_is_one_sentence_and_exit_1(tmp_path, capsys):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
    assert mnist_edge(["predict", "--server", "127.0.0.1:1", "--timeout", "5", str(tmp_path / "blank.png")]) == 1
    assert "answered UNAVAILABLE" in capsys.readouterr().err
