#!/usr/bin/env python3
"""PyTorch timings of the models the engine's step command times: CIFAR ResNet-20 (option A) and ResNet-50,
inference and a training step (forward, cross-entropy, backward, SGD momentum 0.9), float32, median ms and
images/s. --tf32 off disables TF32 (matmul and cuDNN) for a like-for-like float32 comparison; default leaves
PyTorch's defaults. Prints one line per measurement: `torch <model> <mode> batch=<n> median_ms=<x> img_s=<y>`."""
import argparse, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlockA(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        s = x
        if self.stride != 1 or self.pad:
            s = x[:, :, ::self.stride, ::self.stride]
            s = F.pad(s, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + s)


def resnet20a():
    layers, cin = [], 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(BasicBlockA(cin, cout, stride if i == 0 else 1)); cin = cout
    return nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), *layers,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def resnet50():
    try:
        import torchvision
        return torchvision.models.resnet50()
    except ImportError:
        return None


def time_model(model, shape, classes, mode, iters, device):
    model = model.to(device)
    x = torch.randn(*shape, device=device)
    y = torch.randint(0, classes, (shape[0],), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    samples = []
    for i in range(iters + 3):
        torch.cuda.synchronize()
        t = time.perf_counter()
        if mode == "infer":
            model.eval()
            with torch.no_grad():
                model(x)
        else:
            model.train()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        torch.cuda.synchronize()
        if i >= 3:
            samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tf32", choices=["off", "default"], default="off")
    p.add_argument("--cifar-batch", type=int, default=128)
    p.add_argument("--r50-batch", type=int, default=32)
    p.add_argument("--iters", type=int, default=20)
    a = p.parse_args()
    if a.tf32 == "off":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    device = "cuda"
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}; tf32 {a.tf32}; "
          f"cudnn.benchmark {torch.backends.cudnn.benchmark}")
    for name, make, shape, classes in (("resnet20-a", resnet20a, (a.cifar_batch, 3, 32, 32), 10),
                                       ("resnet50", resnet50, (a.r50_batch, 3, 224, 224), 1000)):
        model = make()
        if model is None:
            print(f"torch {name}: torchvision not installed, skipped"); continue
        for mode in ("infer", "train"):
            ms = time_model(model, shape, classes, mode, a.iters, device)
            print(f"torch {name} {mode} batch={shape[0]} median_ms={ms:.3f} img_s={shape[0] * 1000 / ms:.1f}")


if __name__ == "__main__":
    main()
