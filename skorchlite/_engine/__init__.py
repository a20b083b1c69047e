"""The training engine: networks, their gradients, solvers, the loop.

Nothing in this package imports scikit-learn: the estimators validate, then
hand a :class:`~skorchlite._engine.spec.FitSpec` down. Modules, from the
bottom up:

- :mod:`.activations`: the activation registry (forward, derivative, ONNX).
- :mod:`.network`: the MLP built from the parameters, its dropout layer.
- :mod:`.data`: training rows and their batches, for one model or many.
- :mod:`.stack`: forward and backward of a stack of MLPs (one fit is a stack
  of one), the L2 term and gradient clipping.
- :mod:`.func_stack`: copies of one user module as a stack, via ``torch.func``.
- :mod:`.loop`: epochs, stopping rules, history, for any stack.
- :mod:`.solvers`: the solver registry (updates, their state, schedules,
  L-BFGS's own loop).
- :mod:`.spec`: the fit specification.
- :mod:`.batched`: many fits' specs as one stack, groups trained side by side.
"""
