"""A test helper: give a module's batch norms random running statistics and affine parameters, so that
evaluation-mode batch norm is not an identity and a reference computed from the state dict checks something."""

import torch


def random_bn_statistics(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every BatchNorm2d of ``module``: running mean ~ N(0, 0.3²), variance in [0.5, 1.5), weight in [0.5, 1.5),
    bias ~ N(0, 0.1²), drawn from ``seed``. Returns ``module`` (its training mode unchanged)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return module
