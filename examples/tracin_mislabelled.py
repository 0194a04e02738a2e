"""Find mislabelled training images with TracIn self-influence (Pruthi et al. 2020, arXiv:2002.08484, sec. 4.1).

Trains the built-in shapes CNN on images of which 10% carry a wrong label, saving a checkpoint (with its learning
rate) after every epoch, then ranks the training images by TracInCPFast self-influence on the final layer.
Mislabelled examples are hard to fit, so their loss gradients stay large: they should fill the top of the ranking.

    python examples/tracin_mislabelled.py [--n-train 1500] [--epochs 5] [--flip 0.1]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pellucid.data import SimpleCNN, make_shapes
from pellucid.influence import TracInCPFast


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=1500)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--flip", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    data = make_shapes(args.n_train, seed=args.seed)
    labels = data.labels.clone()
    g = torch.Generator().manual_seed(args.seed)
    flipped = torch.rand(len(labels), generator=g) < args.flip
    labels[flipped] = (labels[flipped] + torch.randint(1, 4, (int(flipped.sum()),), generator=g)) % 4
    model = SimpleCNN()
    lr = 3e-3
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(data.images, labels), batch_size=64, shuffle=True, generator=g)
    ckpt_dir = Path(tempfile.mkdtemp(prefix="tracin-"))
    for epoch in range(args.epochs):
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        torch.save({"model_state_dict": model.state_dict(), "learning_rate": lr}, ckpt_dir / f"epoch{epoch}.pt")
    model.eval()
    tracin = TracInCPFast(model, model.head, TensorDataset(data.images, labels), str(ckpt_dir),
                          loss_fn=nn.CrossEntropyLoss(reduction="sum"), batch_size=256)
    scores = tracin.self_influence()
    order = scores.argsort(descending=True)
    n_flip = int(flipped.sum())
    print(f"{n_flip} of {len(labels)} training labels flipped ({flipped.float().mean():.1%})")
    for frac in (0.05, 0.1, 0.2):
        k = int(frac * len(labels))
        found = int(flipped[order[:k]].sum())
        print(f"top {frac:.0%} by self-influence ({k} images): {found} mislabelled "
              f"(precision {found / k:.2f}, recall {found / n_flip:.2f}; random ranking: precision {args.flip:.2f})")


if __name__ == "__main__":
    main()
