"""Side-by-side numbers of pellucid and Captum 0.9 (issue 9, part A): LRP, LayerLRP, LayerGradientXActivation,
LayerConductance and NoiseTunnel on a small CNN and a small MLP with identical arguments.

Captum is not a dependency of pellucid: run this with an interpreter that has Captum and pellucid's sources on the
path, e.g. ``PYTHONPATH=src /work/captum-venv/bin/python benchmarks/captum_agreement_drop_in_a.py``.
Each line prints the largest difference relative to the largest Captum value (0 = identical).
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

warnings.filterwarnings("ignore")
import captum.attr as ca  # noqa: E402
from captum.attr._utils import lrp_rules as captum_rules  # noqa: E402

import pellucid.attr as pa  # noqa: E402


class CNN(nn.Module):
    """Conv-ReLU(inplace)-MaxPool, Conv-ReLU-AvgPool, Linear-ReLU-Dropout-Linear (leaf modules Captum's LRP knows)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2)
        self.fc1, self.relu3, self.drop, self.fc2 = nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 5)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.drop(self.relu3(self.fc1(x.view(x.shape[0], -1)))))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act1, self.fc2, self.act2, self.fc3 = nn.Linear(10, 12), nn.ReLU(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc3(self.act2(self.fc2(self.act1(self.fc1(x)))))


class BatchNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.relu = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()
        self.pool, self.fc = nn.AdaptiveAvgPool2d(2), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.bn(self.conv(x)))).flatten(1))


def rel(a, b) -> float:
    if isinstance(b, (list, tuple)):
        return max(rel(x, y) for x, y in zip(a, b))
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def set_rules(model: nn.Module, rules: dict, module) -> None:
    for name, (cls, *args) in rules.items():
        model.get_submodule(name).rule = getattr(module, cls)(*args)


def lrp() -> None:
    print("== LRP / LayerLRP (rules set on modules, Captum's way)")
    cases = {
        "cnn default rules": (CNN, {}, (4, 3, 16, 16)),
        "cnn gamma/a1b0/eps": (CNN, {"conv1": ("GammaRule", 0.25), "conv2": ("Alpha1_Beta0_Rule",),
                                     "fc1": ("EpsilonRule", 1e-3), "fc2": ("GammaRule", 0.5, True)}, (4, 3, 16, 16)),
        "mlp default rules": (MLP, {}, (6, 10)),
        "mlp gamma/eps/a1b0": (MLP, {"fc1": ("GammaRule", 1.0), "fc2": ("EpsilonRule", 0.1),
                                     "fc3": ("Alpha1_Beta0_Rule", True)}, (6, 10)),
    }
    for name, (cls, rules, shape) in cases.items():
        torch.manual_seed(1)
        model, x = cls().eval(), torch.randn(*shape)
        target = torch.arange(shape[0]) % 3
        mc, mp, mx = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
        set_rules(mc, rules, captum_rules)
        set_rules(mp, rules, pa)
        set_rules(mx, rules, captum_rules)  # pellucid also accepts Captum's rule objects
        a_c, d_c = ca.LRP(mc).attribute(x, target=target, return_convergence_delta=True)
        a_p, d_p = pa.LRP(mp).attribute(x, target=target, return_convergence_delta=True)
        a_x = pa.LRP(mx).attribute(x, target=target)
        print(f"  LRP {name:20s} {rel(a_p, a_c):.1e}  delta {float((d_p - d_c).abs().max()):.1e}  "
              f"(Captum's rule objects {rel(a_x, a_c):.1e})")
        names = ["conv2", "fc1"] if cls is CNN else ["fc1", "fc2"]
        for to_input in (False, True):
            set_rules(mc, rules, captum_rules)  # Captum deleted them after its call
            r_c, dl_c = ca.LayerLRP(mc, [mc.get_submodule(n) for n in names]).attribute(
                x, target=target, attribute_to_layer_input=to_input, return_convergence_delta=True)
            r_p, dl_p = pa.LayerLRP(mp, [mp.get_submodule(n) for n in names]).attribute(
                x, target=target, attribute_to_layer_input=to_input, return_convergence_delta=True)
            r_c = [t[0] if isinstance(t, tuple) else t for t in r_c]
            print(f"    LayerLRP {names} input={to_input:d}: {rel(r_p, r_c):.1e}  delta {rel(dl_p, dl_c):.1e}")
    torch.manual_seed(0)
    model = BatchNormNet().eval()
    model.bn.running_mean.uniform_(-0.3, 0.3)
    model.bn.running_var.uniform_(0.5, 1.5)
    x, target = torch.randn(3, 3, 8, 8), [0, 1, 2]
    captum_result = ca.LRP(copy.deepcopy(model)).attribute(x, target=target)
    merged = pa.LRP(model).attribute(x, target=target)
    with_rule = copy.deepcopy(model)
    with_rule.bn.rule = pa.EpsilonRule()
    print(f"  LRP BatchNorm model: pellucid default (BatchNorm merged) {rel(merged, captum_result):.1e}, "
          f"bn.rule = EpsilonRule() {rel(pa.LRP(with_rule).attribute(x, target=target), captum_result):.1e}")


def noise_tunnel(cnn: nn.Module, mlp: nn.Module) -> None:
    print("== NoiseTunnel (stdevs=0: deterministic; with noise: the same seed draws the same noise)")
    xc, xm = torch.randn(3, 3, 16, 16), torch.randn(3, 10)
    for name, model, x, t in (("cnn", cnn, xc, [1, 0, 4]), ("mlp", mlp, xm, [2, 0, 1])):
        for nt_type in ("smoothgrad", "smoothgrad_sq", "vargrad"):
            c = ca.NoiseTunnel(ca.Saliency(model)).attribute(x, nt_type=nt_type, nt_samples=4, stdevs=0.0, target=t)
            p = pa.NoiseTunnel(pa.Saliency(model)).attribute(x, nt_type=nt_type, nt_samples=4, stdevs=0.0, target=t)
            err = rel(p, c) if nt_type != "vargrad" else float((p - c).abs().max())
            print(f"  Saliency {name} {nt_type:13s} {err:.1e}{' (absolute; both 0)' if nt_type == 'vargrad' else ''}")
        b = torch.randn_like(x) * 0.1
        kw = dict(nt_samples=3, stdevs=0.0, baselines=b, n_steps=20, target=torch.tensor(t))
        c = ca.NoiseTunnel(ca.IntegratedGradients(model)).attribute(x, **kw)
        p = pa.NoiseTunnel(pa.IntegratedGradients(model)).attribute(x, **kw)
        print(f"  IntegratedGradients {name}, per-example baselines, tensor target: {rel(p, c):.1e}")
        kw = dict(nt_samples=3, stdevs=0.0, n_steps=20, target=torch.tensor([1]))
        c = ca.NoiseTunnel(ca.IntegratedGradients(model)).attribute(x, **kw)
        p = pa.NoiseTunnel(pa.IntegratedGradients(model)).attribute(x, **kw)
        print(f"  IntegratedGradients {name}, one-element tensor target: {rel(p, c):.1e}")
        mask = (torch.arange(x[0].numel()).reshape(x.shape[1:]) % 4)[None].repeat(3, *([1] * (x.dim() - 1)))
        mask[1] = (mask[1] + 1) % 4
        mask[2] = 0
        c = ca.NoiseTunnel(ca.FeatureAblation(model)).attribute(x, nt_samples=2, stdevs=0.0, target=t, feature_mask=mask)
        p = pa.NoiseTunnel(pa.FeatureAblation(model)).attribute(x, nt_samples=2, stdevs=0.0, target=t, feature_mask=mask)
        print(f"  FeatureAblation {name}, per-example feature_mask: {rel(p, c):.1e}")
        torch.manual_seed(5)
        c = ca.NoiseTunnel(ca.Saliency(model)).attribute(x, nt_samples=7, stdevs=0.2, target=t)
        p = pa.NoiseTunnel(pa.Saliency(model)).attribute(x, nt_samples=7, stdevs=0.2, target=t, seed=5)
        print(f"  Saliency {name}, stdevs=0.2, seed 5 (torch.manual_seed(5) for Captum): {rel(p, c):.1e}")


def layer_methods(cnn: nn.Module, mlp: nn.Module) -> None:
    print("== LayerGradientXActivation, LayerConductance")
    xc, xm = torch.randn(3, 3, 16, 16), torch.randn(3, 10)
    for name, model, x, t, names in (("cnn", cnn, xc, [1, 0, 4], ["conv2", "fc1"]), ("mlp", mlp, xm, [2, 0, 1], ["fc1", "fc2"])):
        for lname in names + ["both"]:
            layer = [model.get_submodule(n) for n in names] if lname == "both" else model.get_submodule(lname)
            errs = []
            for to_input in (False, True):
                c = ca.LayerGradientXActivation(model, layer).attribute(x, target=t, attribute_to_layer_input=to_input)
                p = pa.LayerGradientXActivation(model, layer).attribute(x, target=t, attribute_to_layer_input=to_input)
                errs.append(rel(p, c))
            print(f"  LayerGradientXActivation {name} {lname:5s} output/input: {errs[0]:.1e} / {errs[1]:.1e}")
            if lname == "both":
                continue
            c, dc = ca.LayerConductance(model, layer).attribute(x, target=t, n_steps=64, return_convergence_delta=True)
            p, dp = pa.LayerConductance(model, layer).attribute(x, target=t, n_steps=64, return_convergence_delta=True)
            c4 = ca.LayerConductance(model, layer).attribute(x, target=t, n_steps=400, method="riemann_left")
            p4 = pa.LayerConductance(model, layer).attribute(x, target=t, n_steps=400, method="riemann_left")
            print(f"  LayerConductance {name} {lname}: {rel(p, c):.1e} (gausslegendre 64), {rel(p4, c4):.1e} "
                  f"(riemann_left 400; the documented rule difference); "
                  f"|delta| Captum {float(dc.abs().max()):.1e}, pellucid {float(dp.abs().max()):.1e}")


if __name__ == "__main__":
    lrp()
    torch.manual_seed(2)
    cnn, mlp = CNN().eval(), MLP().eval()
    noise_tunnel(cnn, mlp)
    layer_methods(cnn, mlp)
