"""The documentation the two estimators share, written once.

``TorchMLPClassifier`` and ``TorchMLPRegressor`` word most of their parameters
and fitted attributes alike. Those entries live here, and :func:`assemble`
puts them into each class's docstring where it has a ``%(shared_parameters)s``
or ``%(shared_attributes)s`` line, beside the entries the class words itself
(``class_weight``, ``loss``, ``classes_``, ...): the parameters in the order of
the class's signature, the attributes in :data:`ATTRIBUTE_ORDER`. In a shared
entry, ``%(sklearn)s`` is the scikit-learn class the estimator replaces.
torch.optim's docstrings are assembled from shared fragments the same way.

The options of ``solver`` and ``activation`` and their descriptions come from
the registries (names in registry order, each entry's ``doc``): an entry added
there is documented without editing a docstring.
"""

import inspect
import re
import textwrap

from ._engine.activations import ACTIVATIONS
from ._engine.solvers import SOLVERS

_WIDTH = 80  # of a description, indented by 8 in the docstring (88 in all)
_LITERAL = re.compile(r"``.+?``")


def options(names):
    """The numpydoc type of a string parameter taking one of ``names``.

    Examples
    --------
    >>> options(["adam", "sgd"])
    '{"adam", "sgd"}'
    """
    return "{" + ", ".join(f'"{name}"' for name in names) + "}"


def _literals(names):
    """``"a"``, ``"b"`` and ``"c"``."""
    quoted = [f'``"{name}"``' for name in names]
    return (
        quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
    )


def _wrap(text, first="", rest=""):
    """``text`` filled to the width of the hand-written entries, never breaking
    an inline literal."""
    unbroken = _LITERAL.sub(lambda m: m.group().replace(" ", "\0"), text)
    filled = textwrap.fill(
        unbroken,
        _WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_on_hyphens=False,
        break_long_words=False,
    )
    return filled.replace("\0", " ")


def _option_list(registry):
    """One RST bullet per registry entry: its name and its ``doc``."""
    return "\n".join(
        _wrap(f'``"{name}"``: {entry.doc}', "- ", "  ")
        for name, entry in registry.items()
    )


def _solver_description():
    stochastic = [
        name for name, solver in SOLVERS.items() if solver.partial_fit_error() is None
    ]
    rule = (
        f"{_literals(stochastic)} are stochastic: they train on minibatches of "
        "``batch_size`` for epochs, and have ``partial_fit``"
    )
    if len(stochastic) < len(SOLVERS):
        rule += "; the others train on the whole data at each iteration"
    return (
        "The optimizer of the weights:\n\n"
        + _option_list(SOLVERS)
        + "\n\n"
        + _wrap(rule + ".")
    )


def _activation_description():
    rule = (
        "Each has a closed-form gradient (torch's own backward kernel), so the "
        "fit needs no autograd and the batched searches stack any of them."
    )
    return (
        "Activation function of the hidden layers:\n\n"
        + _option_list(ACTIVATIONS)
        + "\n\n"
        + _wrap(rule)
    )


#: The parameters both estimators word alike: numpydoc header -> description.
PARAMETERS = {
    f'activation : {options(ACTIVATIONS)}, default="relu"': _activation_description(),
    f'solver : {options(SOLVERS)}, default="adam"': _solver_description(),
    "alpha : float, default=0.0001": """\
Strength of the L2 penalty on the weights (not the biases), divided by
the batch's sample-weight sum like ``%(sklearn)s``'s. With
``solver="adamw"`` it is AdamW's decoupled ``weight_decay`` instead.""",
    'batch_size : int or "auto", default="auto"': """\
Minibatch size of the stochastic solvers; ``"auto"`` is
``min(200, n_samples)``.""",
    'learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"': """\
Learning-rate schedule, as in ``%(sklearn)s``. Only used when
``solver="sgd"``.""",
    "learning_rate_init : float, default=0.001": """\
Initial learning rate of the stochastic solvers.""",
    "power_t : float, default=0.5": """\
Exponent of the ``"invscaling"`` schedule.""",
    "max_iter : int, default=200": """\
Maximum number of epochs (stochastic solvers) or iterations (lbfgs).""",
    "shuffle : bool, default=True": """\
Whether to shuffle the samples every epoch.""",
    "random_state : int, RandomState instance or None, default=None": """\
Seeds the initial weights, the batch order, dropout and the early
stopping split. An int gives identical models on the CPU. Fitting never
draws from the global numpy or torch random generators.""",
    "tol : float, default=1e-4": """\
Training stops when the loss (or validation score) has not improved by
``tol`` for ``n_iter_no_change`` consecutive epochs.""",
    "verbose : bool or int, default=False": """\
Print %(sklearn)s's progress lines to stdout (``Iteration 3, loss =
0.41234567``, ``Validation score: 0.964912`` with early stopping, and
the stopping rule's message), each followed by our extras (the epoch's
time, the validation loss). An int ``k > 1`` prints every ``k``
epochs. When stdout is a terminal or a notebook and tqdm is installed
(``pip install skorchlite[progress]``), ``fit`` shows a live progress
bar instead, with the same numbers and the time left. With
scikit-learn >= 1.9, ``set_callbacks`` also takes its callbacks, such
as ``sklearn.callback.ProgressBar`` (one sub-task per epoch).""",
    "warm_start : bool, default=False": """\
Reuse the previous solution as the initialization of the next ``fit``.""",
    "momentum : float, default=0.9": """\
Momentum of ``solver="sgd"``.""",
    "nesterovs_momentum : bool, default=True": """\
Whether ``solver="sgd"`` uses Nesterov's momentum (when momentum > 0).""",
    "validation_fraction : float, default=0.1": """\
Share of the training data held out for early stopping.""",
    "beta_1, beta_2 : float, default=0.9, 0.999": """\
Adam's moment decay rates.""",
    "epsilon : float, default=1e-8": """\
Adam's numerical-stability term.""",
    "n_iter_no_change : int, default=10": """\
Epochs without ``tol`` improvement before stopping.""",
    "max_fun : int, default=15000": """\
Maximum number of loss evaluations of ``solver="lbfgs"``.""",
    'device : str or torch.device, default="auto"': """\
Where to train and predict: ``"auto"`` (CUDA if available, then MPS,
then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a
``torch.device``.""",
    'dtype : {"float32", "float64"} or None, default=None': """\
Precision of the network. ``None`` follows ``%(sklearn)s`` on the CPU
(float32 input trains in float32, anything else, and ``solver="lbfgs"``,
in float64) and uses float32 on GPUs.""",
    "dropout : float, default=0.0": """\
Dropout probability after each hidden activation.""",
    "max_grad_norm : float or None, default=None": """\
Clip the global gradient norm to this value at every step.""",
    "predict_batch_size : int, default=16384": """\
Rows per forward pass in the predict methods; bounds their memory.""",
}

#: The fitted attributes both estimators word alike.
ATTRIBUTES = {
    "n_features_in_ : int": """\
Number of features seen during fit.""",
    "feature_names_in_ : ndarray of shape (``n_features_in_``,)": """\
Feature names, when ``X`` had string column names (pandas).""",
    "coefs_ : list of ndarray": """\
Weight matrices, ``coefs_[i]`` of shape (fan_in, fan_out). Editing them
in place (on the CPU) or assigning items or the whole list edits the
module; see :ref:`differences`.""",
    "intercepts_ : list of ndarray": """\
Bias vectors of the layers, ``intercepts_[i]`` of shape (fan_out,),
edited and set like ``coefs_``.""",
    "n_layers_ : int": """\
Number of layers, input and output included.""",
    "best_loss_ : np.float64 or None": """\
Lowest training loss; None with early stopping.""",
    "loss_curve_ : list of np.float64": """\
Training loss after each epoch (stochastic solvers), over all calls.""",
    "validation_loss_curve_ : list of float or None": """\
Validation loss (without the L2 term) after each epoch with early
stopping, else None. Ours: %(sklearn)s does not keep it.""",
    "n_iter_ : int": """\
Number of epochs (lbfgs: iterations) run by the last call to ``fit``,
or 1 after ``partial_fit``, as in %(sklearn)s.""",
    "t_ : int": """\
Number of training samples the stochastic solvers have seen, over
all calls (lbfgs adds none), as %(sklearn)s's.""",
}

#: The order of the Attributes sections, shared and own entries together.
ATTRIBUTE_ORDER = (
    "classes_",
    "n_features_in_",
    "feature_names_in_",
    "module_",
    "coefs_",
    "intercepts_",
    "n_outputs_",
    "out_activation_",
    "n_layers_",
    "loss_",
    "best_loss_",
    "loss_curve_",
    "validation_scores_",
    "validation_loss_curve_",
    "best_validation_score_",
    "n_iter_",
    "t_",
)

_SUBSTITUTION = re.compile(r"%\((\w+)\)s")


def _names(header):
    """The names an entry's header documents: ``"beta_1, beta_2 : ..."``."""
    return [name.strip() for name in header.split(" : ")[0].split(",")]


def _substitute(text, values):
    def value(match):
        if match.group(1) not in values:
            raise KeyError(f"no value for %({match.group(1)})s in {text!r}")
        return values[match.group(1)]

    return _SUBSTITUTION.sub(value, text)


def _entry(header, description, indent):
    body = textwrap.indent(description, indent + "    ")
    return f"{indent}{header}\n{body}"


def _own_entries(section, indent):
    """The entries of a docstring section's lines: header -> description."""
    entries = {}
    header = None
    for line in section:
        if line.strip() and not line.startswith(indent + " "):
            header = line.strip()
            entries[header] = []
        elif header is None:
            if line.strip():
                raise ValueError(f"text before the first entry: {line!r}")
        else:
            entries[header].append(line)
    return {
        header: textwrap.dedent("\n".join(lines)).strip("\n")
        for header, lines in entries.items()
    }


def _fill(doc, placeholder, shared, rank, separator):
    """Replace the section holding the ``placeholder`` line by its own entries
    and the shared ones it does not word itself, sorted by ``rank(name)``.

    Returns the new docstring and the names its section documents.
    """
    lines = doc.split("\n")
    at = [i for i, line in enumerate(lines) if line.strip() == placeholder]
    if len(at) != 1:
        raise ValueError(f"the docstring needs one {placeholder} line")
    (at,) = at
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    # The section: from below its dashes to the next section's title.
    start = max(i for i in range(at) if _is_rule(lines[i])) + 1
    titles = [i - 1 for i in range(at + 1, len(lines)) if _is_rule(lines[i])]
    stop = titles[0] if titles else len(lines)
    own = _own_entries(lines[start:at] + lines[at + 1 : stop], indent)
    own_names = {name for header in own for name in _names(header)}
    entries = {
        **{h: t for h, t in shared.items() if not set(_names(h)) & own_names},
        **own,
    }
    documented = [name for header in entries for name in _names(header)]
    if len(set(documented)) != len(documented):
        raise ValueError(f"an entry is documented twice: {sorted(documented)}")
    ordered = sorted(entries, key=lambda header: rank(_names(header)[0]))
    body = separator.join(_entry(h, entries[h], indent) for h in ordered)
    return "\n".join([*lines[:start], body, "", *lines[stop:]]), set(documented)


def _is_rule(line):
    return len(line.strip()) > 2 and set(line.strip()) == {"-"}


def assemble(*, sklearn):
    """Class decorator: fill the class's docstring with the shared entries.

    ``sklearn`` names the scikit-learn estimator the class replaces (the
    ``%(sklearn)s`` of the shared entries). An entry the class words itself
    replaces the shared one of that name. Raises ValueError, when the class
    is defined, if a parameter of its signature has no entry, an entry is
    not a parameter or an attribute of :data:`ATTRIBUTE_ORDER`, or a name
    has two entries.
    """

    def decorate(cls):
        values = {"sklearn": sklearn}
        # A ``**module_params`` parameter is documented under that header.
        signature = [
            f"**{p.name}" if p.kind == p.VAR_KEYWORD else p.name
            for p in inspect.signature(cls).parameters.values()
        ]

        def parameter_rank(name):
            if name not in signature:
                raise ValueError(f"{cls.__name__} documents {name!r}, no parameter")
            return signature.index(name)

        def attribute_rank(name):
            if name not in ATTRIBUTE_ORDER:
                raise ValueError(f"{name!r} is missing from ATTRIBUTE_ORDER")
            return ATTRIBUTE_ORDER.index(name)

        parameters = {
            h: _substitute(t, values)
            for h, t in PARAMETERS.items()
            if set(_names(h)) <= set(signature)  # the MLPs' own, for instance
        }
        doc, documented = _fill(
            cls.__doc__, "%(shared_parameters)s", parameters, parameter_rank, "\n\n"
        )
        if documented != set(signature):
            raise ValueError(
                f"parameters of {cls.__name__} without an entry: "
                f"{sorted(set(signature) - documented)}"
            )
        attributes = {h: _substitute(t, values) for h, t in ATTRIBUTES.items()}
        cls.__doc__, _ = _fill(
            doc, "%(shared_attributes)s", attributes, attribute_rank, "\n"
        )
        return cls

    return decorate
