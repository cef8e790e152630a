"""Ask a served digits model about the held-out digits no training run ever saw, and print
some predictions and the accuracy: the client side of `make demo`.

    python images/trainer/digits_client.py http://127.64.0.3:8000 --model digits

The model is what the reference trainer (`train.py --task digits`) exports and a
ModelDeployment serves on Triton: INPUT, rows of 64 pixels in [0, 1]; OUTPUT, the
probability of each digit. Requests go over Triton's HTTP API (tritonclient), in batches
of `--batch` rows. The last line is `accuracy A on N held-out digits (R right)`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from urllib.parse import urlparse

import numpy as np
import tritonclient.http as httpclient
from train import held_out_digits

SHADES = " .:-=+*#%@"


def ask(url: str, model: str, images: np.ndarray, batch: int) -> np.ndarray:
    """The model's class probabilities for each image, `batch` images per request."""
    address = urlparse(url).netloc or url
    client = httpclient.InferenceServerClient(address)
    answers = []
    for start in range(0, len(images), batch):
        rows = images[start : start + batch]
        request = httpclient.InferInput("INPUT", list(rows.shape), "FP32")
        request.set_data_from_numpy(rows)
        answers.append(client.infer(model, [request]).as_numpy("OUTPUT"))
    client.close()
    return np.concatenate(answers)


def picture(image: np.ndarray) -> list[str]:
    """An 8x8 digit as 8 lines of text, darker characters for darker pixels."""
    levels = np.clip((image * (len(SHADES) - 1)).round().astype(int), 0, len(SHADES) - 1)
    return ["".join(SHADES[v] * 2 for v in row) for row in levels.reshape(8, 8)]


def show(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray) -> None:
    """The first few digits side by side, each with its prediction."""
    pictures = [picture(image) for image in images]
    for line in zip(*pictures, strict=True):
        print("   ".join(line))
    captions = []
    for label, row in zip(labels, probabilities, strict=True):
        guess = int(row.argmax())
        mark = "right" if guess == label else f"wrong, is {label}"
        captions.append(f"{guess} ({row[guess]:.0%}, {mark})".ljust(16))
    print("   ".join(captions))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the Triton server, e.g. http://127.64.0.3:8000")
    parser.add_argument("--model", default="digits", help="the model's name in Triton")
    parser.add_argument("--count", type=int, default=0, help="how many digits (default: all)")
    parser.add_argument("--batch", type=int, default=64, help="rows per request")
    parser.add_argument("--show", type=int, default=6, help="digits to draw")
    args = parser.parse_args(argv)
    images, labels = held_out_digits()
    if args.count:
        images, labels = images[: args.count], labels[: args.count]
    probabilities = ask(args.url, args.model, images, args.batch)
    shown = slice(0, args.show)
    show(images[shown], labels[shown], probabilities[shown])
    right = int((probabilities.argmax(axis=1) == labels).sum())
    print(f"accuracy {right / len(labels):.4f} on {len(labels)} held-out digits ({right} right)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
