"""skorchlite._optim: torch's optimizers, bit for bit, without torch._dynamo."""

import pickle

import pytest
import torch
from torch import nn

from skorchlite import _optim

CASES = [
    (_optim.Adam, torch.optim.Adam, {"lr": 0.01, "fused": True}),
    (_optim.Adam, torch.optim.Adam, {"lr": 0.01, "foreach": False}),
    (_optim.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    (_optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
]


def network():
    generator = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.uniform_(-1, 1, generator=generator)
    return net


def train(optimizer_class, kwargs, steps=5):
    net = network()
    optimizer = optimizer_class(net.parameters(), **kwargs)
    X = torch.linspace(-1, 1, 30, dtype=torch.float64).reshape(10, 3)
    for _ in range(steps):
        optimizer.zero_grad()
        net(X).square().mean().backward()
        optimizer.step()
    return net, optimizer


def assert_same_state(left, right):
    assert left["param_groups"] == right["param_groups"]
    assert left["state"].keys() == right["state"].keys()
    for index, state in right["state"].items():
        assert state.keys() == left["state"][index].keys()
        for key, value in state.items():
            assert torch.equal(left["state"][index][key], value), key


@pytest.mark.parametrize(("ours", "theirs", "kwargs"), CASES)
def test_steps_and_state_equal_torch_optimizers(ours, theirs, kwargs):
    our_net, our_optimizer = train(ours, kwargs)
    their_net, their_optimizer = train(theirs, kwargs)
    assert isinstance(our_optimizer, theirs)
    for mine, reference in zip(
        our_net.parameters(), their_net.parameters(), strict=True
    ):
        assert torch.equal(mine, reference)
    assert_same_state(our_optimizer.state_dict(), their_optimizer.state_dict())


@pytest.mark.parametrize(("ours", "theirs", "kwargs"), CASES)
def test_state_dicts_load_across_both(ours, theirs, kwargs):
    # A state saved by torch's optimizer (say, in a model pickled before these
    # classes existed) loads into ours, and the reverse.
    _, their_optimizer = train(theirs, kwargs)
    _, our_optimizer = train(ours, kwargs, steps=1)
    saved = pickle.loads(pickle.dumps(their_optimizer.state_dict()))
    our_optimizer.load_state_dict(saved)
    assert_same_state(our_optimizer.state_dict(), their_optimizer.state_dict())
    _, fresh = train(theirs, kwargs, steps=1)
    fresh.load_state_dict(our_optimizer.state_dict())
    assert_same_state(fresh.state_dict(), their_optimizer.state_dict())
